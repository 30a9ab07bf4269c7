"""The DenseNets of the SoK's Fig. 10 (Du et al. 2025, Sec. 5.2.1): DenseNet-43 and DenseNet-53
with all their dense connections (the SoK's "baselines") or with fewer ("variants-1" and
"variants-2"), from the "cutting strategies" of the SoK's ref. [43], Ju et al., "Connection
Reduction of DenseNet for Image Recognition" (ISPACS 2022), whose reference code
(github.com/RuiyangJu/Connection_Reduction, cifar10/models/DenseNet{43,53}{,_sht1,_sht2}.py)
defines all six networks. We build them from that code, not from Huang et al.'s DenseNet:

* stem: 7×7 convolution, stride 1, padding 3, no bias, 2k channels, ReLU (the CIFAR-style stem:
  the first block sees the full image);
* four dense blocks of 3×3 convolutions (DenseNet-43: 8, 10, 12, 8; DenseNet-53: 10, 12, 16, 8),
  each with bias and k output channels followed by a ReLU. A block normalises its input
  (BatchNorm), which only its first convolution reads; convolution m ≥ 2 reads the channel
  concatenation of the outputs of the block's convolutions in ``sources(connections, m)``, and
  the block's output is that of ``sources(connections, L + 1)`` (L convolutions). The block's
  input is not part of the concatenation (unlike Huang et al.'s DenseNet);
* after each block a transition: 1×1 convolution with bias, ReLU, BatchNorm, 2×2 average pool;
  it halves the channels, except the last, which gives 4k (ShortNet2: 2k), as the code has it;
* BatchNorm, flatten, Linear(·, 512), Linear(512, classes), with no activation between the two.

Module and parameter names are the reference's (firstconv, denseblock1.0.conv1, ...,
transitionlayer4.0.bn, bn, pre_classifier, classifier) and the modules are built in its order:
at k = 32 with 3 channels, 32×32 images and 10 classes, a seed gives the reference's state dict
(same keys, same weights) and the same outputs, checked against its code for all six networks,
and the parameter counts are its README's (2,167,786 / 1,592,362 / 974,090 for DenseNet-43,
3,151,722 / 2,156,138 / 1,204,826 for DenseNet-53). Initialisation is PyTorch's default, as in
the reference code (and the SoK's "PyTorch's default initialization").

The connection patterns (``connections``), with convolutions numbered 1..L within a block:

* 'all' (the baseline): convolution m reads every convolution before it, 1..m-1;
* 'shortnet1': convolution 1, its predecessor m-1, and m-2, m-4, ... down to 2;
* 'shortnet2': its predecessor m-1 and m-2, and, when m is odd, also m-4, m-8, m-16, ... ≥ 1.

Ju et al.'s code writes each concatenation out by hand; the rules above reproduce every one of
them (for m up to 17, the longest block), and ``tests/test_model_densenet.py`` checks them against
those lists. The repository's figure of the patterns (Img/connection.jpg) draws the skips into
the last node of an 8-layer block: from 1..6 for the baseline, 1, 3, 5 for ShortNet1 and 1, 5
for ShortNet2, as these rules give for the block's output.

Skip connections (the SoK's Fig. 10 labels each model with their number). Our copy of the SoK
lost the numbers, and neither paper defines the count, so we define it: an edge from a
convolution's output to the input of a later convolution of its block, or to the block's output,
other than the one from its immediate predecessor (the plain sequential path). A block of L
convolutions has L(L-1)/2 of them with every connection; :attr:`DenseNet.skip_connections`
counts them over the four blocks: DenseNet-43 167 / 108 / 56 and DenseNet-53 259 / 160 / 73
('all' / 'shortnet1' / 'shortnet2').

A property of the reference network, kept: at PyTorch's default initialisation and in eval mode
with fresh BatchNorm statistics (mean 0, variance 1, so every BatchNorm is the identity) the
input hardly reaches the logits. Over a batch of CIFAR-sized noise their spread is about 1e-6 of
their size for all six networks (each convolution's default weights shrink the signal and its
bias adds a constant); in train mode the BatchNorms rescale it and the spread is of the logits'
own size. An attack on an untrained DenseNet in eval mode therefore sees a gradient that barely
depends on the image.

Departures from the reference code (none changes what the network computes):

* its ReLU after each concatenation is left out: every concatenated tensor is already a ReLU's
  output, so the ReLU is the identity there, in value and in gradient;
* its ReLUs are in place; ours are not, so that hooks and double backpropagation see every
  activation;
* the growth rate k (32 in the code) is an option, and the stem (64 = 2k) and the last
  transition (128 = 4k, ShortNet2 64 = 2k) scale with it; the pre-classifier keeps its 512 units;
* the input channels and classes are the dataset's, and any side of at least 16 pixels works
  (the code's flatten assumes 32×32: 2×2 maps after four pools); the flattened size is
  computed from the side.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.models.options import DENSENETS as ARCHITECTURES  # name -> layers per block, summary
from evalgrid.models.options import DenseNetOptions

PRE_CLASSIFIER = 512  # units of the first of the two linear layers


def _all(layer: int) -> set[int]:
    return set(range(1, layer))


def _shortnet1(layer: int) -> set[int]:
    return {1, layer - 1} | set(range(layer - 2, 1, -2))


def _shortnet2(layer: int) -> set[int]:
    kept = {layer - 1} | ({layer - 2} if layer >= 3 else set())
    if layer % 2:
        kept |= {layer - 2 ** n for n in range(2, layer.bit_length()) if layer - 2 ** n >= 1}
    return kept


RULES: dict[str, Callable[[int], set[int]]] = {"all": _all, "shortnet1": _shortnet1, "shortnet2": _shortnet2}
LAST_TRANSITION_PER_GROWTH = {"all": 4, "shortnet1": 4, "shortnet2": 2}  # 128 or 64 channels at k = 32


def sources(connections: str, layer: int) -> tuple[int, ...]:
    """The convolutions of a dense block (numbered from 1) whose outputs, concatenated in this
    order, are the input of convolution ``layer`` ≥ 2; for ``layer`` = L + 1, the block's output."""
    return tuple(sorted(RULES[connections](layer)))


def skip_connections(connections: str, blocks: tuple[int, ...]) -> int:
    """Edges into a convolution's input or a block's output other than the one from the
    immediate predecessor, summed over ``blocks`` (their numbers of convolutions)."""
    return sum(len(sources(connections, layer)) - 1 for size in blocks for layer in range(2, size + 2))


class DenseBlock(nn.Module):
    """BatchNorm on the input, then ``size`` 3×3 conv+ReLU layers joined by ``connections``."""

    def __init__(self, in_channels: int, size: int, growth_rate: int, connections: str):
        super().__init__()
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm2d(in_channels)
        self.inputs = [sources(connections, layer) for layer in range(2, size + 2)]  # conv2..convL, output
        self.add_module("conv1", nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1))
        for layer, read in enumerate(self.inputs[:-1], start=2):
            self.add_module(f"conv{layer}", nn.Conv2d(len(read) * growth_rate, growth_rate, kernel_size=3, padding=1))
        self.out_channels = len(self.inputs[-1]) * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = {1: self.relu(self.conv1(self.bn(x)))}
        for layer, read in enumerate(self.inputs[:-1], start=2):
            conv = getattr(self, f"conv{layer}")
            outputs[layer] = self.relu(conv(torch.cat([outputs[j] for j in read], 1)))
        return torch.cat([outputs[j] for j in self.inputs[-1]], 1)


class Transition(nn.Module):
    """1×1 conv (with bias), ReLU, BatchNorm, 2×2 average pool (the reference's order)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm2d(out_channels)  # registered before conv, as in the reference
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.avg_pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.avg_pool(self.bn(self.relu(self.conv(x))))


class DenseNet(nn.Module):
    """Stem, dense blocks of ``blocks`` convolutions each followed by a transition, two linear
    layers. ``skip_connections``: the count defined in the module docstring (SoK Fig. 10's label)."""

    def __init__(self, blocks: tuple[int, ...], channels: int, resolution: int, num_classes: int,
                 growth_rate: int = 32, connections: str = "all"):
        super().__init__()
        self.connections = connections
        self.skip_connections = skip_connections(connections, blocks)
        self.firstconv = nn.Conv2d(channels, 2 * growth_rate, kernel_size=7, padding=3, bias=False)
        self.relu = nn.ReLU()
        widths = [2 * growth_rate]  # each block's input channels, then the last transition's output
        dense = []
        for size in blocks:  # the reference builds every block, then every transition
            dense.append(DenseBlock(widths[-1], size, growth_rate, connections))
            widths.append(dense[-1].out_channels // 2)
        widths[-1] = LAST_TRANSITION_PER_GROWTH[connections] * growth_rate
        for index, block in enumerate(dense, start=1):
            self.add_module(f"denseblock{index}", nn.Sequential(block))
        for index, block in enumerate(dense, start=1):
            self.add_module(f"transitionlayer{index}", nn.Sequential(Transition(block.out_channels, widths[index])))
        side = resolution >> len(blocks)  # each 2×2 average pool floors the side
        self.bn = nn.BatchNorm2d(widths[-1])
        self.pre_classifier = nn.Linear(widths[-1] * side * side, PRE_CLASSIFIER)
        self.classifier = nn.Linear(PRE_CLASSIFIER, num_classes)
        self.stages = len(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.firstconv(x))
        for index in range(1, self.stages + 1):
            out = getattr(self, f"transitionlayer{index}")(getattr(self, f"denseblock{index}")(out))
        return self.classifier(self.pre_classifier(torch.flatten(self.bn(out), 1)))

    def extra_repr(self) -> str:
        return f"connections={self.connections!r}, skip_connections={self.skip_connections}"


def build(options: DenseNetOptions, info: DatasetInfo, architecture: str = "densenet43") -> DenseNet:
    """``architecture`` names an entry of :data:`evalgrid.models.options.DENSENETS`."""
    blocks = ARCHITECTURES[architecture].blocks
    minimum = 2 ** len(blocks)  # one 2×2 average pool per block: the last feature map is 1×1
    if info.resolution < minimum:
        raise UserError(f"model {architecture!r} needs images of at least {minimum}×{minimum} pixels (one 2×2 "
                        f"average pool after each of its {len(blocks)} dense blocks); this dataset's are "
                        f"{info.resolution}×{info.resolution}: set the grid factor resolution = [{minimum}] or more.")
    return DenseNet(blocks, info.channels, info.resolution, info.num_classes, options.growth_rate,
                    options.connections)
