"""Models: every registered model fits the dataset it is built for; ConvNet and ResNet-18 match
their references."""

from __future__ import annotations

from collections import OrderedDict

import hashlib

import pytest
import torch
from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.catalogue import MODELS
from evalgrid.errors import UserError
from evalgrid.models.convnet import ConvNetOptions, ConvNetSoKOptions, minimum_resolution
from evalgrid.models.resnet import ResNetOptions
from evalgrid.catalogue.options import parse_options
from evalgrid.fl.threat_model import Normalization

DIGITS_LIKE = DatasetInfo("digits-like", channels=1, resolution=32, num_classes=10,
                          normalization=Normalization(mean=(0.5,), std=(0.25,)))
CIFAR_LIKE = DatasetInfo("cifar-like", channels=3, resolution=32, num_classes=100,
                         normalization=Normalization(mean=(0.5,) * 3, std=(0.25,) * 3))




def build(name, info, options=None):
    component = MODELS[name]
    return component.build(options if options is not None else component.options(), info)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def shapes(model):
    return [(key, value.shape) for key, value in model.state_dict().items()]


PAPER_MODELS = ["lenet", "convnet", "convnet_sok", "resnet10", "resnet18", "resnet34"]  # defined here
ZOO_MODELS = ["densenet121", "mobilenet_v2", "vgg11", "vgg16", "vgg19", "googlenet", "inception_v3",
              "resnet50", "resnet152", "vit", "swin"]  # built by torchvision: tests/test_model_zoo.py


def test_the_registry_holds_the_papers_models():
    assert set(PAPER_MODELS + ZOO_MODELS) <= set(MODELS.names())


@pytest.mark.parametrize("info", [DIGITS_LIKE, CIFAR_LIKE], ids=lambda info: info.name)
@pytest.mark.parametrize("name", PAPER_MODELS)
def test_every_model_maps_the_datasets_images_to_its_classes(name, info):
    torch.manual_seed(0)
    model = build(name, info)
    logits = model(torch.rand(2, info.channels, info.resolution, info.resolution))
    assert logits.shape == (2, info.num_classes)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_parameters_are_deterministic_under_manual_seed(name):
    def weights(seed):
        torch.manual_seed(seed)
        return build(name, CIFAR_LIKE).state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_every_model_builds_on_the_meta_device(name):
    with torch.device("meta"):
        model = build(name, CIFAR_LIKE)
    assert all(p.is_meta for p in model.parameters())


# ConvNet (Geiping et al. 2020) -------------------------------------------------------------

def conv3x3(cin, cout):
    return cin * cout * 9 + cout


def batch_norm(c):
    return 2 * c


def reference_convnet_count(width, channels, classes):
    """conv0..conv7 with BatchNorm; the linear layer sees 4w channels of 3×3 at 32×32 (36w)."""
    w = width
    convs = [(channels, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w)] + [(4 * w, 4 * w)] * 4
    return (sum(conv3x3(cin, cout) + batch_norm(cout) for cin, cout in convs)
            + 36 * w * classes + classes)


def test_convnet64_has_the_reference_parameter_count():
    model = build("convnet", CIFAR_LIKE)
    assert ConvNetOptions().width == 64
    assert parameter_count(model) == reference_convnet_count(64, 3, 100)
    assert reference_convnet_count(64, 3, 10) == 2_904_970  # ConvNet64 on CIFAR-10


def test_convnet_width_scales_every_layer():
    for width in (1, 8, 16):
        model = build("convnet", DIGITS_LIKE, ConvNetOptions(width=width))
        assert parameter_count(model) == reference_convnet_count(width, 1, 10)


def reference_convnet(width, channels, classes):
    """inversefed/nn/models.py ConvNet, written out: conv6/bn6/relu6 appear twice under one key."""
    def block(i, cin, cout):
        return [(f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1)), (f"bn{i}", nn.BatchNorm2d(cout)),
                (f"relu{i}", nn.ReLU())]

    w = width
    layers = (block(0, channels, w) + block(1, w, 2 * w) + block(2, 2 * w, 2 * w) + block(3, 2 * w, 4 * w)
              + block(4, 4 * w, 4 * w) + block(5, 4 * w, 4 * w) + [("pool0", nn.MaxPool2d(3))]
              + block(6, 4 * w, 4 * w) + block(6, 4 * w, 4 * w) + block(7, 4 * w, 4 * w)
              + [("pool1", nn.MaxPool2d(3)), ("flatten", nn.Flatten()), ("linear", nn.Linear(36 * w, classes))])
    return nn.Sequential(OrderedDict(layers))


def test_convnet_seeded_weights_and_names_match_the_reference():
    torch.manual_seed(5)
    ours = build("convnet", CIFAR_LIKE, ConvNetOptions(width=8)).model.state_dict()
    torch.manual_seed(5)
    theirs = reference_convnet(8, 3, 100).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


# ConvNet micro-designs (SoK Table 4) -------------------------------------------------------

def state_digest(state):
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_default_convnet_weights_are_unchanged_by_the_micro_design_options():
    # Pinned before the micro-design options existed: seed 0, ConvNet64, 3 channels, 32×32, 100 classes.
    torch.manual_seed(0)
    model = build("convnet", CIFAR_LIKE)
    assert state_digest(model.state_dict()) == "bea876934870291ef3d9c4f5d4be39e0e4bf7720625de5618e76ef901e26278a"


def seeded(name, options, info=DIGITS_LIKE, seed=0):
    torch.manual_seed(seed)
    return build(name, info, options)


def outputs(model, info=DIGITS_LIKE):
    torch.manual_seed(1)
    images = torch.rand(2, info.channels, info.resolution, info.resolution)
    torch.manual_seed(2)  # the same dropout masks for both models
    return model(images)


SMALL = ConvNetOptions(width=4)


def test_convnet_without_bias_drops_every_conv_and_linear_bias():
    model = seeded("convnet", ConvNetOptions(width=4, bias=False))
    conv_channels = 4 * (1 + 2 + 2 + 4 * 5)
    assert parameter_count(model) == parameter_count(seeded("convnet", SMALL)) - conv_channels - 10
    assert all(name.startswith("model.bn") for name, _ in model.named_parameters() if name.endswith("bias"))


def test_convnet_without_relu_keeps_the_parameters_and_changes_the_output():
    plain, linear = seeded("convnet", SMALL), seeded("convnet", ConvNetOptions(width=4, relu=False))
    assert not any(isinstance(m, nn.ReLU) for m in linear.modules())
    assert parameter_count(plain) == parameter_count(linear)
    assert not torch.allclose(outputs(plain), outputs(linear))


def test_convnet_dropout_sits_before_the_linear_layer_and_changes_the_output():
    plain, dropped = seeded("convnet", SMALL), seeded("convnet", ConvNetOptions(width=4, dropout=0.5))
    names = [name for name, _ in dropped.model.named_children()]
    assert names[-3:] == ["flatten", "dropout", "linear"] and dropped.model.dropout.p == 0.5
    assert parameter_count(plain) == parameter_count(dropped)
    assert not torch.allclose(outputs(plain), outputs(dropped))


def test_convnet_without_max_pool_feeds_the_full_feature_map_to_the_linear_layer():
    model = seeded("convnet", ConvNetOptions(width=4, max_pool=False))
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.model.linear.in_features == 16 * 32 * 32


@pytest.mark.parametrize(("kernel_size", "padding", "side"), [(4, 1, 2), (2, 1, 4), (1, 1, 6), (3, 2, 6), (3, 3, 8)])
def test_convnet_kernel_and_padding_set_every_convolution_and_the_linear_size(kernel_size, padding, side):
    # 32 + 2p - k + 1 per convolution, ⌊s/3⌋ per pool: e.g. k4 p1: 32 → 26 → 8 → 6 → 2.
    model = seeded("convnet", ConvNetOptions(width=4, kernel_size=kernel_size, padding=padding))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert {(c.kernel_size, c.padding) for c in convs} == {((kernel_size,) * 2, (padding,) * 2)}
    assert model.model.linear.in_features == 16 * side * side
    assert outputs(model).shape == (2, 10)


@pytest.mark.parametrize("max_pool", [True, False])
@pytest.mark.parametrize("padding", range(4))
@pytest.mark.parametrize("kernel_size", range(1, 8))
def test_convnet_linear_size_formula_fits_the_feature_map_down_to_the_minimum(kernel_size, padding, max_pool):
    options = ConvNetOptions(width=1, kernel_size=kernel_size, padding=padding, max_pool=max_pool)
    minimum = minimum_resolution(options)
    for resolution in (minimum, minimum + 5):
        info = DatasetInfo("x", 1, resolution, 10, DIGITS_LIKE.normalization)
        with torch.device("meta"):
            model = build("convnet", info, options)
            assert model(torch.empty(2, 1, resolution, resolution)).shape == (2, 10)
    if minimum > 1:
        with pytest.raises(UserError, match=f"at least {minimum}×{minimum}"):
            build("convnet", DatasetInfo("x", 1, minimum - 1, 10, DIGITS_LIKE.normalization), options)


def test_convnet_on_too_small_images_names_the_model_and_its_minimum():
    tiny = DatasetInfo("tiny", 1, 8, 10, DIGITS_LIKE.normalization)
    with pytest.raises(UserError, match=r"model 'convnet_sok' needs images of at least 9×9 pixels.*are 8×8"):
        build("convnet_sok", tiny)


def test_convnet_sok_is_geipings_convnet64_with_one_dropout_layer():
    sok, geiping = ConvNetSoKOptions(), ConvNetOptions()
    assert (sok.dropout, geiping.dropout) == (0.5, 0.0)
    assert {**vars(sok), "dropout": 0.0} == vars(geiping)
    assert isinstance(build("convnet_sok", CIFAR_LIKE).model.dropout, nn.Dropout)


def test_sok_table4_rows_are_convnet_sok_overrides():
    row = parse_options(ConvNetSoKOptions, {"bias": False})
    assert (row.bias, row.dropout, row.kernel_size) == (False, 0.5, 3)
    assert parse_options(ConvNetSoKOptions, {"dropout": 0}).dropout == 0.0


# ResNet-18 ------------------------------------------------------------------------------

def layer1_side(model, resolution=32):
    seen = {}
    model.layer1.register_forward_hook(lambda module, inputs, output: seen.update(side=output.shape[-1]))
    model(torch.rand(2, model.conv1.in_channels, resolution, resolution))  # 2: BN needs > 1 value
    return seen["side"]


def test_resnet18_cifar_stem_is_the_default_and_keeps_32x32_into_layer1():
    assert ResNetOptions().stem == "cifar"
    model = build("resnet18", CIFAR_LIKE)
    assert (model.conv1.kernel_size, model.conv1.stride) == ((3, 3), (1, 1))
    assert layer1_side(model) == 32


def test_resnet18_imagenet_stem_reaches_layer1_at_8x8():
    model = build("resnet18", CIFAR_LIKE, ResNetOptions(stem="imagenet"))
    assert (model.conv1.kernel_size, model.conv1.stride) == ((7, 7), (2, 2))
    assert layer1_side(model) == 8


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_resnet18_first_conv_reads_the_datasets_channels(stem):
    model = build("resnet18", DIGITS_LIKE, ResNetOptions(stem=stem))
    assert model.conv1.in_channels == 1 and model.fc.out_features == 10


def test_resnet18_imagenet_stem_on_rgb_is_torchvisions_resnet18():
    from torchvision.models import resnet18

    torch.manual_seed(3)
    ours = build("resnet18", CIFAR_LIKE, ResNetOptions(stem="imagenet")).state_dict()
    torch.manual_seed(3)
    theirs = resnet18(weights=None, num_classes=100).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_resnet18_parameter_counts_are_the_published_ones():
    rgb_1000 = DatasetInfo("imagenet-like", 3, 224, 1000, CIFAR_LIKE.normalization)
    rgb_10 = DatasetInfo("cifar10-like", 3, 32, 10, CIFAR_LIKE.normalization)
    assert parameter_count(build("resnet18", rgb_1000, ResNetOptions(stem="imagenet"))) == 11_689_512  # torchvision docs
    # The 3×3 stem has 64·3·9 weights instead of 64·3·49: the usual CIFAR ResNet-18 count.
    assert parameter_count(build("resnet18", rgb_10)) == 11_689_512 - 64 * 3 * (49 - 9) - 990 * 513 == 11_173_962


# ResNet-10/18/34: torchvision's layout, width, cut skips ----------------------------------

MNIST_LIKE = DatasetInfo("mnist-like", channels=1, resolution=28, num_classes=10,
                         normalization=DIGITS_LIKE.normalization)


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_resnet_imagenet_stem_has_torchvisions_parameter_names_and_shapes(name):
    import torchvision

    rgb_10 = DatasetInfo("rgb", 3, 32, 10, CIFAR_LIKE.normalization)
    with torch.device("meta"):
        ours = build(name, rgb_10, ResNetOptions(stem="imagenet", width=1))
        theirs = getattr(torchvision.models, name)(num_classes=10)
    assert shapes(ours) == shapes(theirs)


def test_resnet10_on_mnist_has_fedleaks_parameter_count():
    # FedLeak, footnote 3: "a ResNet10 model for MNIST has 4902090 parameters" (3×3 stem).
    assert parameter_count(build("resnet10", MNIST_LIKE)) == 4_902_090


def test_resnet_width_multiplies_every_stages_channels():
    with torch.device("meta"):
        model = build("resnet10", CIFAR_LIKE, ResNetOptions(width=3))
    assert model.conv1.out_channels == 192
    assert [getattr(model, f"layer{i}")[0].conv2.out_channels for i in range(1, 5)] == [192, 384, 768, 1536]
    assert model.fc.in_features == 1536


def test_resnet_cut_skip_changes_the_output_but_not_the_weights():
    plain = seeded("resnet18", ResNetOptions())
    cut = seeded("resnet18", ResNetOptions(cut_skips="layer1.0"))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), cut.state_dict().values()))
    assert not torch.allclose(outputs(plain), outputs(cut))


def test_resnet_cut_skip_of_a_downsampling_block_removes_its_shortcut():
    with torch.device("meta"):
        model = build("resnet18", CIFAR_LIKE, ResNetOptions(cut_skips="layer2.0, layer3.1"))
    assert model.layer2[0].downsample is None and not model.layer2[0].skip and not model.layer3[1].skip
    assert model.layer3[0].downsample is not None and model.layer3[0].skip
    assert not any("layer2.0.downsample" in name for name, _ in model.named_parameters())


def test_a_cut_downsampling_block_keeps_the_uncut_models_other_weights_at_the_same_seed():
    # paired cells: cutting layer2.0 (a 1x1 shortcut) must not shift the draws of later layers
    plain = seeded("resnet10", ResNetOptions()).state_dict()
    cut = seeded("resnet10", ResNetOptions(cut_skips="layer2.0")).state_dict()
    assert set(plain) - set(cut) == {k for k in plain if k.startswith("layer2.0.downsample.")}
    assert all(torch.equal(cut[k], plain[k]) for k in cut)


def test_resnet_cut_skips_all_cuts_every_block():
    with torch.device("meta"):
        model = build("resnet34", CIFAR_LIKE, ResNetOptions(cut_skips="all"))
    blocks = [block for i in range(1, 5) for block in getattr(model, f"layer{i}")]
    assert len(blocks) == 16 and not any(block.skip for block in blocks)


def test_resnet_cut_skips_with_an_unknown_block_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown block 'layer1\.2'.*Did you mean 'layer1\.[01]'.*"
                                        r"layer1\.0, layer1\.1, layer2\.0.*layer4\.1, or 'all'"):
        build("resnet18", CIFAR_LIKE, ResNetOptions(cut_skips="layer1.2"))
