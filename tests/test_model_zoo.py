"""The torchvision zoo: every architecture builds for the dataset (channels, classes, a
resolution it supports), refuses one it cannot take, and is torchvision's own model on RGB."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.models.fitting import check_batch_fits
from evalgrid.catalogue import MODELS
from evalgrid.models.zoo import ZOO, ViTOptions
from evalgrid.fl.threat_model import Normalization

ZOO_MODELS = list(ZOO)
MINIMUM = {"densenet121": 29, "mobilenet_v2": 1, "vgg11": 32, "vgg16": 32, "vgg19": 32, "googlenet": 15,
           "inception_v3": 75, "resnet50": 1, "resnet152": 1, "vit": 16, "swin": 4}
TORCHVISION_BUILDER = {"vit": "vit_b_16", "swin": "swin_t"}  # the others share the builder's name




def info(channels=3, resolution=32, num_classes=7):
    return DatasetInfo("x", channels, resolution, num_classes, Normalization((0.5,) * channels, (0.25,) * channels))


def build(name, data, options=None):
    component = MODELS[name]
    return component.build(options if options is not None else component.options(), data)


def shapes(model):
    return [(key, value.shape) for key, value in model.state_dict().items()]


def test_the_minimum_resolutions_cover_the_whole_zoo():
    assert set(MINIMUM) == set(ZOO_MODELS) and set(ZOO_MODELS) <= set(MODELS.names())


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_every_zoo_model_runs_forward_and_backward_on_a_small_batch(name):
    data = info(resolution=max(32, MINIMUM[name]))
    torch.manual_seed(0)
    model = build(name, data)
    logits = model(torch.rand(2, 3, data.resolution, data.resolution))
    assert logits.shape == (2, 7)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_every_zoo_model_builds_on_the_meta_device_for_one_channel(name):
    data = info(channels=1, resolution=max(32, MINIMUM[name]))
    with torch.device("meta"):
        model = build(name, data)
        logits = model(torch.empty(2, 1, data.resolution, data.resolution))
    assert all(p.is_meta for p in model.parameters()) and logits.shape == (2, 7)
    assert model.get_submodule(ZOO[name].stem).in_channels == 1


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_every_zoo_model_on_rgb_has_torchvisions_parameters(name):
    from torchvision import models

    kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    with torch.device("meta"):
        ours = build(name, info(resolution=224))
        theirs = getattr(models, TORCHVISION_BUILDER.get(name, name))(num_classes=7, **kwargs)
    assert shapes(ours) == shapes(theirs)


@pytest.mark.parametrize("name", [name for name, side in MINIMUM.items() if side > 1])
def test_too_small_images_raise_a_user_error_naming_the_minimum(name):
    side = MINIMUM[name]
    with pytest.raises(UserError, match=f"model '{name}' needs images of at least {side}×{side} pixels; "
                                        f"this dataset's are {side - 1}×{side - 1}"):
        build(name, info(resolution=side - 1))


@pytest.mark.parametrize("name", [name for name, side in MINIMUM.items() if side > 1 and name != "vit"])
def test_each_minimum_is_the_smallest_side_torchvisions_model_takes(name):
    side = MINIMUM[name]
    with torch.device("meta"):
        model = ZOO[name].make(ZOO[name].options(), info(resolution=side))
        model(torch.empty(2, 3, side, side))
        with pytest.raises(RuntimeError):
            model(torch.empty(2, 3, side - 1, side - 1))


def test_inception_v3_at_32_pixels_says_how_to_fix_the_grid():
    with pytest.raises(UserError) as error:
        build("inception_v3", info(resolution=32))
    assert str(error.value) == ("model 'inception_v3' needs images of at least 75×75 pixels; "
                                "this dataset's are 32×32: set the grid factor resolution = [75] or more.")


def test_one_channel_stem_keeps_the_geometry_of_torchvisions_first_convolution():
    with torch.device("meta"):
        rgb, gray = build("googlenet", info()), build("googlenet", info(channels=1))
    old, new = rgb.conv1.conv, gray.conv1.conv
    assert (new.in_channels, new.out_channels, new.kernel_size, new.stride, new.padding, new.bias) == (
        1, old.out_channels, old.kernel_size, old.stride, old.padding, None)


def test_one_channel_stem_is_initialised_like_the_architectures_own():
    torch.manual_seed(0)
    conv = build("googlenet", info(channels=1)).conv1.conv  # truncated normal, std 0.01
    assert conv.weight.abs().max() < 0.05 and 0.008 < conv.weight.std() < 0.012


def test_vit_patch_size_must_divide_the_resolution():
    with pytest.raises(UserError, match="patch_size = 16 divides.*40×40"):
        build("vit", info(resolution=40))


def test_vit_heads_must_divide_the_hidden_width():
    with pytest.raises(UserError, match="num_heads = 5 must divide hidden_dim = 768"):
        build("vit", info(), ViTOptions(num_heads=5))


def test_vit_defaults_are_vit_b_16_with_the_datasets_image_size():
    with torch.device("meta"):
        model = build("vit", info(resolution=48))
    assert (model.patch_size, model.image_size, model.hidden_dim, len(model.encoder.layers)) == (16, 48, 768, 12)


def test_vit_head_is_zero_as_torchvision_unless_asked_otherwise():
    small = {"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "mlp_dim": 16}
    torch.manual_seed(0)
    assert not build("vit", info(), ViTOptions(**small)).heads.head.weight.any()
    assert build("vit", info(), ViTOptions(**small, zero_head=False)).heads.head.weight.any()


def test_check_batch_fits_refuses_one_image_where_batchnorm_meets_a_1x1_map():
    with pytest.raises(UserError, match="'densenet121' cannot take a batch of 1 images of 32×32"):
        check_batch_fits("densenet121", MODELS["densenet121"].options(), info(), batch_size=1)
    check_batch_fits("densenet121", MODELS["densenet121"].options(), info(), batch_size=2)
    check_batch_fits("densenet121", MODELS["densenet121"].options(), info(resolution=61), batch_size=1)


def test_check_batch_fits_draws_no_number_from_the_global_rng_and_checks_large_models_on_the_meta_device():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    check_batch_fits("densenet121", MODELS["densenet121"].options(), info(), batch_size=2)  # 8 M: built for real
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(UserError, match="'resnet50' cannot take a batch of 1 images of 16×16"):  # 24 M: on meta
        check_batch_fits("resnet50", MODELS["resnet50"].options(), info(resolution=16), batch_size=1)
    check_batch_fits("resnet50", MODELS["resnet50"].options(), info(resolution=16), batch_size=2)


def test_zoo_models_are_not_imported_until_built():
    import subprocess
    import sys

    code = "import sys, evalgrid.models; print('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_zoo_models_use_torchvisions_initialisation_for_rgb():
    from torchvision.models import mobilenet_v2

    torch.manual_seed(4)
    ours = build("mobilenet_v2", info()).state_dict()
    torch.manual_seed(4)
    theirs = mobilenet_v2(num_classes=7).state_dict()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


def test_stem_paths_name_convolutions():
    with torch.device("meta"):
        for name, entry in ZOO.items():
            model = build(name, info(resolution=max(32, MINIMUM[name])))
            assert isinstance(model.get_submodule(entry.stem), nn.Conv2d), name
