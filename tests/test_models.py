"""Models: every registered model fits the dataset it is built for; ConvNet and ResNet-18 match
their references."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.models import MODELS
from evalgrid.models.convnet import ConvNetOptions
from evalgrid.models.resnet import ResNetOptions
from evalgrid.threat_model import Normalization

DIGITS_LIKE = DatasetInfo("digits-like", channels=1, resolution=32, num_classes=10,
                          normalization=Normalization(mean=(0.5,), std=(0.25,)))
CIFAR_LIKE = DatasetInfo("cifar-like", channels=3, resolution=32, num_classes=100,
                         normalization=Normalization(mean=(0.5,) * 3, std=(0.25,) * 3))


def build(name, info, options=None):
    component = MODELS[name]
    return component.build(options if options is not None else component.options(), info)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def test_the_registry_holds_lenet_convnet_and_resnet18():
    assert {"lenet", "convnet", "resnet18"} <= set(MODELS.names())


@pytest.mark.parametrize("info", [DIGITS_LIKE, CIFAR_LIKE], ids=lambda info: info.name)
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_maps_the_datasets_images_to_its_classes(name, info):
    torch.manual_seed(0)
    model = build(name, info)
    logits = model(torch.rand(2, info.channels, info.resolution, info.resolution))
    assert logits.shape == (2, info.num_classes)


@pytest.mark.parametrize("name", MODELS.names())
def test_parameters_are_deterministic_under_manual_seed(name):
    def weights(seed):
        torch.manual_seed(seed)
        return build(name, CIFAR_LIKE).state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


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
