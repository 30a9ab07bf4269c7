"""densenet43, densenet53: Ju et al.'s DenseNets and their reduced connections (SoK Fig. 10).

The expected values come from Ju et al.'s reference code (github.com/RuiyangJu/Connection_Reduction,
cifar10/models/DenseNet{43,53}{,_sht1,_sht2}.py), typed out here: its hand-written
concatenations, its transition widths and the parameter counts of its six networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evalgrid.catalogue import MODELS
from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.fl.threat_model import Normalization
from evalgrid.models.densenet import sources
from evalgrid.models.options import DENSENETS, DenseNetOptions


def info(channels, resolution, classes):
    return DatasetInfo(f"{channels}x{resolution}", channels, resolution, classes,
                       Normalization(mean=(0.5,) * channels, std=(0.25,) * channels))


MNIST_LIKE = info(1, 28, 10)
CIFAR10_LIKE = info(3, 32, 10)
CIFAR100_LIKE = info(3, 32, 100)
DIGITS_LIKE = info(1, 16, 10)
NAMES = ["densenet43", "densenet53"]
CONNECTIONS = ["all", "shortnet1", "shortnet2"]

# c_k of the reference's forward (ShortNet1/2, DenseNet-53's 16-layer block; shorter blocks use a
# prefix): the convolutions concatenated into the input of conv k+1, or the block's output when k = L.
REFERENCE_CONCATENATIONS = {
    "shortnet1": {1: [1], 2: [1, 2], 3: [1, 2, 3], 4: [1, 3, 4], 5: [1, 2, 4, 5], 6: [1, 3, 5, 6], 7: [1, 2, 4, 6, 7],
                  8: [1, 3, 5, 7, 8], 9: [1, 2, 4, 6, 8, 9], 10: [1, 3, 5, 7, 9, 10], 11: [1, 2, 4, 6, 8, 10, 11],
                  12: [1, 3, 5, 7, 9, 11, 12], 13: [1, 2, 4, 6, 8, 10, 12, 13], 14: [1, 3, 5, 7, 9, 11, 13, 14],
                  15: [1, 2, 4, 6, 8, 10, 12, 14, 15], 16: [1, 3, 5, 7, 9, 11, 13, 15, 16]},
    "shortnet2": {1: [1], 2: [1, 2], 3: [2, 3], 4: [1, 3, 4], 5: [4, 5], 6: [3, 5, 6], 7: [6, 7], 8: [1, 5, 7, 8],
                  9: [8, 9], 10: [3, 7, 9, 10], 11: [10, 11], 12: [5, 9, 11, 12], 13: [12, 13],
                  14: [7, 11, 13, 14], 15: [14, 15], 16: [1, 9, 13, 15, 16]},
    "all": {k: list(range(1, k + 1)) for k in range(1, 17)},
}

# (in, out) channels of transitionlayer1..4 in the reference
REFERENCE_TRANSITIONS = {
    ("densenet43", "all"): [(256, 128), (320, 160), (384, 192), (256, 128)],
    ("densenet43", "shortnet1"): [(160, 80), (192, 96), (224, 112), (160, 128)],
    ("densenet43", "shortnet2"): [(128, 64), (128, 64), (128, 64), (128, 64)],
    ("densenet53", "all"): [(320, 160), (384, 192), (512, 256), (256, 128)],
    ("densenet53", "shortnet1"): [(192, 96), (224, 112), (288, 144), (160, 128)],
    ("densenet53", "shortnet2"): [(128, 64), (128, 64), (160, 80), (128, 64)],
}

# the reference networks' parameters at 10 classes (its README: 2.17, 1.59, 0.97, 3.15, 2.16, 1.20 M)
REFERENCE_PARAMETERS = {
    ("densenet43", "all"): 2_167_786, ("densenet43", "shortnet1"): 1_592_362, ("densenet43", "shortnet2"): 974_090,
    ("densenet53", "all"): 3_151_722, ("densenet53", "shortnet1"): 2_156_138, ("densenet53", "shortnet2"): 1_204_826,
}


def build(name, data, **options):
    return MODELS[name].build(DenseNetOptions(**options), data)


def test_defaults_are_ju_et_als_dense_baselines():
    assert DenseNetOptions() == DenseNetOptions(connections="all", growth_rate=32)
    assert DENSENETS["densenet43"].blocks == (8, 10, 12, 8)
    assert DENSENETS["densenet53"].blocks == (10, 12, 16, 8)


@pytest.mark.parametrize("connections", CONNECTIONS)
def test_sources_are_the_reference_concatenations(connections):
    for k, expected in REFERENCE_CONCATENATIONS[connections].items():
        assert list(sources(connections, k + 1)) == expected, k


@pytest.mark.parametrize("key", list(REFERENCE_PARAMETERS), ids="-".join)
def test_parameter_counts_and_transitions_are_the_references(key):
    name, connections = key
    with torch.device("meta"):
        model = build(name, CIFAR10_LIKE, connections=connections)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMETERS[key]
    convs = [getattr(model, f"transitionlayer{i}")[0].conv for i in range(1, 5)]
    assert [(c.in_channels, c.out_channels) for c in convs] == REFERENCE_TRANSITIONS[key]


@pytest.mark.parametrize("key", list(REFERENCE_PARAMETERS), ids="-".join)
def test_skip_connection_count_is_every_edge_but_the_sequential_one(key):
    name, connections = key
    concatenations = REFERENCE_CONCATENATIONS[connections]
    # into conv k+1 (or the block's output) come len(c_k) edges, one of them from conv k
    expected = sum(len(concatenations[k]) - 1 for size in DENSENETS[name].blocks for k in range(1, size + 1))
    if connections == "all":
        assert expected == sum(size * (size - 1) // 2 for size in DENSENETS[name].blocks)
    with torch.device("meta"):
        assert build(name, CIFAR10_LIKE, connections=connections).skip_connections == expected


def test_each_cutting_strategy_leaves_fewer_skip_connections():
    with torch.device("meta"):
        counts = {(n, c): build(n, CIFAR10_LIKE, connections=c).skip_connections for n in NAMES for c in CONNECTIONS}
    for name in NAMES:
        assert counts[name, "all"] > counts[name, "shortnet1"] > counts[name, "shortnet2"]
    assert counts == {("densenet43", "all"): 167, ("densenet43", "shortnet1"): 108, ("densenet43", "shortnet2"): 56,
                      ("densenet53", "all"): 259, ("densenet53", "shortnet1"): 160, ("densenet53", "shortnet2"): 73}


def recorded_block(block, images):
    """The block's output, the input each conv read and each conv's output after the ReLU."""
    inputs, outputs = {}, {}
    hooks = []
    for name, module in block.named_children():
        if name.startswith("conv"):
            layer = int(name[4:])
            hooks.append(module.register_forward_pre_hook(lambda m, args, layer=layer: inputs.update({layer: args[0]})))
            hooks.append(module.register_forward_hook(
                lambda m, args, out, layer=layer: outputs.update({layer: torch.relu(out)})))
    output = block(images)
    for hook in hooks:
        hook.remove()
    return output, inputs, outputs


@pytest.mark.parametrize("connections", ["shortnet1", "shortnet2"])
def test_every_convolution_reads_only_the_kept_connections(connections):
    # DenseNet-53's third block, 16 convolutions: conv m's input is exactly the concatenation
    # c_{m-1} of the reference; a cut source contributes no channel to it.
    torch.manual_seed(0)
    model = build("densenet53", CIFAR10_LIKE, connections=connections, growth_rate=2)
    block = model.denseblock3[0]
    output, inputs, outputs = recorded_block(block, torch.rand(2, block.bn.num_features, 8, 8))
    concatenations = REFERENCE_CONCATENATIONS[connections]
    for layer in range(2, 17):
        expected = torch.cat([outputs[j] for j in concatenations[layer - 1]], 1)
        assert torch.equal(inputs[layer], expected), layer
    assert torch.equal(output, torch.cat([outputs[j] for j in concatenations[16]], 1))


def test_a_cut_connection_no_longer_carries_its_sources_change():
    # conv5 of a ShortNet2 block reads conv4 and conv3 only: shifting conv2's output while
    # conv3 and conv4 keep theirs leaves conv5's input unchanged; with every connection it does not.
    def conv5_input(connections, shift):
        torch.manual_seed(0)
        block = build("densenet43", CIFAR10_LIKE, connections=connections, growth_rate=2).denseblock1[0]
        images = torch.rand(2, block.bn.num_features, 8, 8)
        _, _, clean = recorded_block(block, images)
        seen = {}
        hooks = [block.conv2.register_forward_hook(lambda m, a, out: out + shift),
                 block.conv3.register_forward_hook(lambda m, a, out: clean[3]),  # held: ReLU(x) = x for x ≥ 0
                 block.conv4.register_forward_hook(lambda m, a, out: clean[4]),
                 block.conv5.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))]
        block(images)
        for hook in hooks:
            hook.remove()
        return seen["x"]

    assert torch.equal(conv5_input("shortnet2", 0.0), conv5_input("shortnet2", 1.0))
    assert not torch.equal(conv5_input("all", 0.0), conv5_input("all", 1.0))


@pytest.mark.parametrize("data", [MNIST_LIKE, CIFAR100_LIKE, DIGITS_LIKE], ids=lambda d: d.name)
@pytest.mark.parametrize("connections", CONNECTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_every_variant_maps_the_datasets_images_to_its_classes(name, connections, data):
    model = build(name, data, connections=connections, growth_rate=2)
    logits = model(torch.rand(2, data.channels, data.resolution, data.resolution))
    assert logits.shape == (2, data.num_classes)
    assert model.firstconv.in_channels == data.channels
    side = data.resolution // 16  # four 2×2 average pools, each flooring the side
    assert model.pre_classifier.in_features == model.bn.num_features * side * side


def test_the_stem_keeps_the_full_image_for_the_first_block():
    model = build("densenet43", CIFAR10_LIKE, growth_rate=2)
    conv = model.firstconv
    assert (conv.kernel_size, conv.stride, conv.padding, conv.bias) == ((7, 7), (1, 1), (3, 3), None)
    seen = {}
    model.denseblock1.register_forward_pre_hook(lambda m, args: seen.update(side=args[0].shape[-1]))
    model(torch.rand(2, 3, 32, 32))
    assert seen["side"] == 32


@pytest.mark.parametrize("connections", CONNECTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name, connections):
    # growth rate 8: with 2 channels a convolution's ReLU is sometimes dead for the whole batch
    torch.manual_seed(0)
    model = build(name, CIFAR10_LIKE, connections=connections, growth_rate=8)
    loss = nn.functional.cross_entropy(model(torch.rand(2, 3, 32, 32)), torch.tensor([3, 8]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_growth_rate_sets_the_width_of_every_convolution():
    with torch.device("meta"):
        model = build("densenet43", CIFAR10_LIKE, growth_rate=4)
    convs = [m for name, m in model.named_modules() if ".0.conv" in name and "transition" not in name]
    assert len(convs) == 8 + 10 + 12 + 8 and {c.out_channels for c in convs} == {4}
    assert model.firstconv.out_channels == 8 and model.bn.num_features == 16


def test_images_below_16_pixels_are_refused_with_the_minimum():
    with pytest.raises(UserError, match=r"model 'densenet53' needs images of at least 16×16 pixels.*are 15×15"):
        build("densenet53", info(1, 15, 10))


def test_parameters_are_deterministic_under_manual_seed():
    def weights(seed):
        torch.manual_seed(seed)
        return build("densenet43", DIGITS_LIKE, connections="shortnet1", growth_rate=2).state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_parameter_names_are_the_references():
    with torch.device("meta"):
        names = list(build("densenet43", CIFAR10_LIKE, connections="shortnet2").state_dict())
    assert names[:4] == ["firstconv.weight", "denseblock1.0.bn.weight", "denseblock1.0.bn.bias",
                         "denseblock1.0.bn.running_mean"]
    assert "denseblock4.0.conv8.bias" in names and "transitionlayer1.0.conv.weight" in names
    assert names[-4:] == ["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"]
