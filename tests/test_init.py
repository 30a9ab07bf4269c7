"""Initialisations (grid factor `init`): the constructor's, DLG's wide uniform, torchvision's
ImageNet weights from a local cache (never downloaded), and a saved checkpoint.

Pretrained tests save a randomly initialised torchvision model under the real file name into
a temporary torch cache: not ImageNet weights, but the same names, shapes and loading path."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.catalogue import INITS, MODELS
from evalgrid.models.convnet import ConvNetOptions
from evalgrid.models.init import PRETRAINED, _densenet_keys, _rgb_inputs_like_torchvision, _vit_positions
from evalgrid.models.resnet import ResNetOptions
from evalgrid.models.zoo import ViTOptions
from evalgrid.fl.threat_model import Normalization
from evalgrid.models.weights import MODEL_WEIGHT_URLS, WEIGHTS

RGB = DatasetInfo("rgb", 3, 32, 10, Normalization((0.5,) * 3, (0.25,) * 3))
GRAY = DatasetInfo("gray", 1, 32, 10, Normalization((0.5,), (0.25,)))
RESNET18_FILE = "resnet18-f37072fd.pth"


def build(name, options=None, info=RGB, seed=0):
    torch.manual_seed(seed)
    component = MODELS[name]
    return component.build(options if options is not None else component.options(), info)


def initialise(init_name, model, model_name, model_options, **init_options):
    component = INITS[init_name]
    component.build(component.options(**init_options)).apply(model, model_name, model_options)


def preflight(init_name, model_name, model_options, **init_options):
    component = INITS[init_name]
    component.preflight(component.options(**init_options), model_name, model_options)


def same_state(first, second):
    return all(torch.equal(first[key], second[key]) for key in first)


def test_the_init_registry_holds_the_five_schemes():
    assert INITS.names() == ["default", "layer-defaults", "wide-uniform", "pretrained", "checkpoint"]


# default ------------------------------------------------------------------------------------

def test_default_keeps_the_constructors_weights():
    model = build("convnet", ConvNetOptions(width=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initialise("default", model, "convnet", ConvNetOptions(width=4))
    preflight("default", "convnet", ConvNetOptions(width=4))
    assert same_state(before, model.state_dict())


# layer-defaults -----------------------------------------------------------------------------

def test_layer_defaults_redraw_resnet_convs_from_pytorchs_per_layer_uniform():
    # torchvision's scheme: N(0, 2/fan_out); PyTorch's Conv2d default: U(±1/sqrt(fan_in)), whose
    # standard deviation is 1/sqrt(3·fan_in). layer1.0.conv1 of ResNet-18: 64·3·3 = 576 both ways.
    model = build("resnet18", ResNetOptions())
    weight = model.layer1[0].conv1.weight
    assert weight.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.02)
    initialise("layer-defaults", model, "resnet18", ResNetOptions())
    weight = model.layer1[0].conv1.weight
    assert weight.abs().max().item() <= 1 / 576 ** 0.5
    assert weight.std().item() == pytest.approx(1 / (3 * 576) ** 0.5, rel=0.02)
    assert torch.equal(model.bn1.weight, torch.ones(64)) and torch.equal(model.bn1.bias, torch.zeros(64))


def test_layer_defaults_follow_the_global_seed():
    first, second = build("resnet10", ResNetOptions()), build("resnet10", ResNetOptions())
    for model in (first, second):
        torch.manual_seed(7)
        initialise("layer-defaults", model, "resnet10", ResNetOptions())
    assert same_state(first.state_dict(), second.state_dict())


# wide-uniform -------------------------------------------------------------------------------

def test_wide_uniform_draws_every_conv_and_linear_weight_and_bias_within_a():
    model = build("convnet", ConvNetOptions(width=4))
    initialise("wide-uniform", model, "convnet", ConvNetOptions(width=4), a=0.3)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    values = torch.cat([p.flatten() for m in layers for p in (m.weight, m.bias)])
    assert values.abs().max() <= 0.3 and values.abs().max() > 0.29 and abs(values.mean()) < 0.02


def test_wide_uniform_leaves_batchnorm_affine_as_is():
    model = build("convnet", ConvNetOptions(width=4))
    initialise("wide-uniform", model, "convnet", ConvNetOptions(width=4))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in norms)


def test_wide_uniform_default_is_dlgs_half_width():
    assert INITS["wide-uniform"].options().a == 0.5


def test_wide_uniform_is_reproducible_from_the_global_seed():
    def draw(seed):
        model = build("convnet", ConvNetOptions(width=2))
        torch.manual_seed(seed)
        initialise("wide-uniform", model, "convnet", ConvNetOptions(width=2))
        return model.state_dict()

    assert same_state(draw(3), draw(3)) and not same_state(draw(3), draw(4))


def test_wide_uniform_covers_attention_projections():
    options = ViTOptions(num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16)
    model = build("vit", options)
    initialise("wide-uniform", model, "vit", options, a=2.0)
    attention = model.encoder.layers[0].self_attention
    assert 1.5 < attention.in_proj_weight.abs().max() <= 2.0 and 1.0 < attention.in_proj_bias.abs().max() <= 2.0


# pretrained ---------------------------------------------------------------------------------

def save_checkpoint(torch_home, filename, state):
    path = torch_home / "hub" / "checkpoints" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@pytest.fixture
def resnet18_weights(torch_home):
    """torchvision's resnet18 (random, seed 9) saved where its ImageNet weights belong."""
    import torchvision

    torch.manual_seed(9)
    return save_checkpoint(torch_home, RESNET18_FILE, torchvision.models.resnet18().state_dict())


def test_pretrained_loads_every_tensor_but_the_classifier(resnet18_weights):
    options = ResNetOptions(stem="imagenet")
    model = build("resnet18", options)
    classifier = model.fc.weight.clone()
    initialise("pretrained", model, "resnet18", options)
    saved, state = torch.load(resnet18_weights, weights_only=True), model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in saved.items() if not key.startswith("fc."))
    assert torch.equal(model.fc.weight, classifier)


def test_pretrained_keeps_an_adapted_stem_random(resnet18_weights):
    options = ResNetOptions(stem="cifar")  # 3×3 first convolution: torchvision's is 7×7
    model = build("resnet18", options, info=GRAY)
    stem = model.conv1.weight.clone()
    initialise("pretrained", model, "resnet18", options)
    saved = torch.load(resnet18_weights, weights_only=True)
    assert torch.equal(model.conv1.weight, stem)
    assert torch.equal(model.layer1[0].conv1.weight, saved["layer1.0.conv1.weight"])


def test_pretrained_preflight_passes_when_the_file_is_there(resnet18_weights):
    preflight("pretrained", "resnet18", ResNetOptions())


def test_pretrained_without_the_file_names_the_path_and_the_fetch_command(torch_home):
    expected = torch_home / "hub" / "checkpoints" / RESNET18_FILE
    for check in (lambda: preflight("pretrained", "resnet18", ResNetOptions()),
                  lambda: initialise("pretrained", build("resnet18"), "resnet18", ResNetOptions())):
        with pytest.raises(UserError) as error:
            check()
        assert str(expected) in str(error.value) and "evalgrid weights fetch resnet18" in str(error.value)


@pytest.mark.parametrize(("model_name", "options"), [("convnet", ConvNetOptions()), ("resnet10", ResNetOptions())])
def test_pretrained_for_a_model_without_imagenet_weights_names_those_with(torch_home, model_name, options):
    with pytest.raises(UserError, match=f"model '{model_name}' has no ImageNet weights; models that have them: "
                                        "resnet18, resnet34, resnet50"):
        preflight("pretrained", model_name, options)


def test_pretrained_refuses_a_widened_resnet(torch_home):
    with pytest.raises(UserError, match="width = 1 only, not width = 3"):
        preflight("pretrained", "resnet18", ResNetOptions(width=3))


def test_pretrained_refuses_a_vit_other_than_b_16(torch_home):
    with pytest.raises(UserError, match="ViT-B/16.*not hidden_dim = 8"):
        preflight("pretrained", "vit", ViTOptions(hidden_dim=8))


def test_pretrained_refuses_a_file_that_fills_too_little_of_the_model(torch_home):
    with torch.device("meta"):
        wide = build("resnet18", ResNetOptions(width=2), info=RGB)
    save_checkpoint(torch_home, RESNET18_FILE, {k: torch.zeros(v.shape) for k, v in wide.state_dict().items()})
    with pytest.raises(UserError, match=rf"{RESNET18_FILE} fills only 0 of the \d+ tensors of model 'resnet18'"):
        initialise("pretrained", build("resnet18"), "resnet18", ResNetOptions())


def test_pretrained_never_downloads(torch_home, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    with pytest.raises(UserError, match="never downloads"):
        initialise("pretrained", build("resnet18"), "resnet18", ResNetOptions())


def test_densenet_files_old_layer_names_are_renamed():
    old = {"features.denseblock1.denselayer1.norm.1.weight": 1, "features.denseblock4.denselayer16.conv.2.weight": 2,
           "features.norm5.bias": 3}
    assert _densenet_keys(old, None) == {"features.denseblock1.denselayer1.norm1.weight": 1,
                                         "features.denseblock4.denselayer16.conv2.weight": 2,
                                         "features.norm5.bias": 3}


def test_vit_position_embeddings_are_resized_to_the_models_patch_grid():
    small = ViTOptions(num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16)
    at_32 = build("vit", small).state_dict()  # 2×2 patches + class token
    at_64 = build("vit", small, info=DatasetInfo("rgb64", 3, 64, 10, RGB.normalization))
    resized = _vit_positions(at_32, at_64)
    assert resized["encoder.pos_embedding"].shape == at_64.encoder.pos_embedding.shape == (1, 17, 8)
    assert torch.equal(resized["encoder.pos_embedding"][:, 0], at_32["encoder.pos_embedding"][:, 0])


def test_pretrained_googlenet_on_rgb_rescales_its_input_like_torchvision():
    with torch.device("meta"):
        rgb = build("googlenet")
        gray = build("googlenet", info=GRAY)
    _rgb_inputs_like_torchvision(rgb)
    _rgb_inputs_like_torchvision(gray)
    assert rgb.transform_input and not gray.transform_input


def test_every_pretrained_model_has_a_registered_weights_file():
    assert all(spec.weights in WEIGHTS for spec in PRETRAINED.values())
    assert set(PRETRAINED) <= set(MODELS.names())


def test_weights_urls_are_torchvisions_imagenet1k_v1():
    from torchvision import models

    enums = {"resnet18": models.ResNet18_Weights, "resnet34": models.ResNet34_Weights,
             "resnet50": models.ResNet50_Weights, "resnet152": models.ResNet152_Weights,
             "densenet121": models.DenseNet121_Weights, "mobilenet_v2": models.MobileNet_V2_Weights,
             "vgg11": models.VGG11_Weights, "vgg16": models.VGG16_Weights, "vgg19": models.VGG19_Weights,
             "googlenet": models.GoogLeNet_Weights, "inception_v3": models.Inception_V3_Weights,
             "vit_b_16": models.ViT_B_16_Weights, "swin_t": models.Swin_T_Weights}
    assert set(enums) == set(MODEL_WEIGHT_URLS)
    for name, enum in enums.items():
        assert WEIGHTS[name].url == enum.IMAGENET1K_V1.url, name


def test_weights_cli_lists_the_model_weights(torch_home):
    from evalgrid.cli.weights import command

    result = CliRunner().invoke(command, ["list"])
    assert result.exit_code == 0
    for name in MODEL_WEIGHT_URLS:
        assert f"{name} " in result.output and WEIGHTS[name].filename in result.output


# checkpoint ---------------------------------------------------------------------------------

SMALL = ConvNetOptions(width=2)


def test_checkpoint_round_trips_a_saved_state_dict(tmp_path):
    saved = build("convnet", SMALL, seed=1)
    path = tmp_path / "model.pt"
    torch.save(saved.state_dict(), path)
    model = build("convnet", SMALL, seed=2)
    preflight("checkpoint", "convnet", SMALL, path=str(path))
    initialise("checkpoint", model, "convnet", SMALL, path=str(path))
    assert same_state(saved.state_dict(), model.state_dict())


def test_checkpoint_accepts_a_state_dict_under_the_state_dict_key(tmp_path):
    saved = build("convnet", SMALL, seed=1)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": saved.state_dict(), "epoch": 3}, path)
    model = build("convnet", SMALL, seed=2)
    initialise("checkpoint", model, "convnet", SMALL, path=str(path))
    assert same_state(saved.state_dict(), model.state_dict())


def test_checkpoint_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(UserError, match=f"the file {path} does not exist"):
        preflight("checkpoint", "convnet", SMALL, path=str(path))
    with pytest.raises(UserError, match=f"the file {path} does not exist"):
        initialise("checkpoint", build("convnet", SMALL), "convnet", SMALL, path=str(path))


def test_checkpoint_needs_a_path():
    with pytest.raises(UserError, match="needs the option path"):
        preflight("checkpoint", "convnet", SMALL)
    with pytest.raises(UserError, match="needs the option path"):
        INITS["checkpoint"].build(INITS["checkpoint"].options())


def test_checkpoint_of_another_model_names_the_file_and_the_first_mismatches(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(build("resnet10").state_dict(), path)
    with pytest.raises(UserError, match=rf"{path} does not fit model 'convnet': missing keys: model\.conv0\.weight, "
                                        r".*\(and \d+ more\); unexpected keys: conv1\.weight"):
        initialise("checkpoint", build("convnet", SMALL), "convnet", SMALL, path=str(path))


def test_checkpoint_with_other_shapes_names_the_mismatch(tmp_path):
    path = tmp_path / "wider.pt"
    torch.save(build("convnet", ConvNetOptions(width=3)).state_dict(), path)
    with pytest.raises(UserError, match=r"shape mismatches: model\.conv0\.weight \(3, 3, 3, 3\) vs \(2, 3, 3, 3\)"):
        initialise("checkpoint", build("convnet", SMALL), "convnet", SMALL, path=str(path))


def test_checkpoint_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "numbers.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(UserError, match="holds no state dict"):
        initialise("checkpoint", build("convnet", SMALL), "convnet", SMALL, path=str(path))


@pytest.mark.parametrize("saved", ["wider", "garbage"])
def test_plan_checks_a_checkpoint_against_the_model_it_initialises(tmp_path, write_grid, cli, saved):
    path = tmp_path / f"{saved}.pt"
    if saved == "wider":
        torch.save(build("convnet", ConvNetOptions(width=3)).state_dict(), path)
    else:
        path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)  # a zip signature, then nothing valid
    grid = write_grid(f"""
        name = "checkpoint-plan"
        [factors]
        dataset = [{{ name = "digits", resolution = 16 }}]
        model = [{{ name = "convnet", width = 2 }}]
        init = [{{ name = "checkpoint", path = "{path}" }}]
        attack = ["dlg"]
        batch_size = [1]
        seed = [0]
        """)
    result = cli("plan", grid, "--check")
    assert result.exit_code == 2
    expected = ("does not fit model 'convnet': shape mismatches" if saved == "wider"
                else "cannot read " + str(path) + " as a torch state dict")
    assert expected in result.output, result.output
