"""fc3: FedLeak's fully connected ReLU network (Sec. 3, App. A), with Inverting Gradients' MLP widths."""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from evalgrid.catalogue import MODELS
from evalgrid.data.base import DatasetInfo
from evalgrid.fl.threat_model import Normalization
from evalgrid.models.options import FullyConnectedOptions


def info(channels, resolution, classes):
    return DatasetInfo(f"{channels}x{resolution}", channels, resolution, classes,
                       Normalization(mean=(0.5,) * channels, std=(0.25,) * channels))


MNIST_LIKE = info(1, 28, 10)
CIFAR10_LIKE = info(3, 32, 10)
CIFAR100_LIKE = info(3, 32, 100)
DIGITS_LIKE = info(1, 16, 10)


def build(data, **options):
    return MODELS["fc3"].build(FullyConnectedOptions(**options), data)


def test_defaults_are_three_hidden_relu_layers_of_1024_units():
    # FedLeak Sec. 3: "three-hidden-layer network with ReLU"; inversefed's MLP: width 1024.
    assert FullyConnectedOptions() == FullyConnectedOptions(width=1024, hidden_layers=3)
    with torch.device("meta"):
        model = build(CIFAR10_LIKE)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 1024), (1024, 1024), (1024, 1024), (1024, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 3


@pytest.mark.parametrize("data", [MNIST_LIKE, CIFAR10_LIKE, CIFAR100_LIKE, DIGITS_LIKE], ids=lambda d: d.name)
def test_maps_the_datasets_images_to_its_classes(data):
    model = build(data, width=16)
    assert model(torch.rand(2, data.channels, data.resolution, data.resolution)).shape == (2, data.num_classes)


def test_mnist_parameter_count_is_the_layers_weights_and_biases():
    with torch.device("meta"):
        model = build(MNIST_LIKE)
    expected = (784 * 1024 + 1024) + 2 * (1024 * 1024 + 1024) + (1024 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == expected == 2_913_290


def test_hidden_layers_sets_the_depth():
    with torch.device("meta"):
        model = build(MNIST_LIKE, width=8, hidden_layers=2)
    assert [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)] == [
        (784, 8), (8, 8), (8, 10)]


def test_forward_is_the_relu_network_formula():
    # f(x) = W3 relu(W2 relu(W1 relu(W0 vec(x) + b0) + b1) + b2) + b3, written with the state dict
    torch.manual_seed(0)
    model = build(MNIST_LIKE, width=12)
    images = torch.rand(3, 1, 28, 28)
    state = model.state_dict()
    hidden = images.reshape(3, -1)
    for index in range(3):
        hidden = torch.clamp(hidden @ state[f"linear{index}.weight"].T + state[f"linear{index}.bias"], min=0)
    expected = hidden @ state["linear3.weight"].T + state["linear3.bias"]
    torch.testing.assert_close(model(images), expected)


def inversefed_mlp(classes):
    """inversefed/nn/models.py construct_model('MLP'), written out: width 1024, 3072 inputs."""
    width = 1024
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("linear0", nn.Linear(3072, width)), ("relu0", nn.ReLU()),
        ("linear1", nn.Linear(width, width)), ("relu1", nn.ReLU()),
        ("linear2", nn.Linear(width, width)), ("relu2", nn.ReLU()),
        ("linear3", nn.Linear(width, classes))]))


def test_seeded_weights_and_names_match_inversefeds_mlp():
    torch.manual_seed(4)
    ours = build(CIFAR10_LIKE).state_dict()
    torch.manual_seed(4)
    theirs = inversefed_mlp(10).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    model = build(CIFAR10_LIKE, width=16)
    loss = nn.functional.cross_entropy(model(torch.rand(2, 3, 32, 32)), torch.tensor([1, 7]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_built_in_models_leave_the_example_plugins_names_free():
    # examples/plugin declares a model 'mlp'; installed beside evalgrid, a clash would stop `plan`.
    plugin = Path(__file__).resolve().parents[1] / "examples" / "plugin" / "src"
    sys.path.insert(0, str(plugin))
    try:
        from evalgrid_example_plugin.entries import ENTRIES
    finally:
        sys.path.remove(str(plugin))
    declared = {entry.name for entry in ENTRIES if entry.kind == "model"}
    assert declared == {"mlp"} and not declared & set(MODELS.names())
