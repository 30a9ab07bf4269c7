"""ResNets with basic blocks (He et al. 2016): ResNet-10 (FedLeak's), ResNet-18 and ResNet-34.

Module and parameter names are torchvision's (conv1, bn1, layer1.0.conv1, ...,
layer2.0.downsample.0, fc), so torchvision's ImageNet state dicts load into width-1 models;
with 3 channels, the 'imagenet' stem and no cut skips, a seed gives exactly
``torchvision.models.resnet18(weights=None)`` (same modules built in the same order, same
initialisation). Three options go beyond torchvision:

* ``stem``: 'cifar' (3×3 stride-1 conv, no max-pool: layer1 sees the full image, the usual
  CIFAR ResNet and FedLeak's ResNet10, whose MNIST parameter count 4,902,090 it matches) or
  'imagenet' (torchvision's 7×7 stride-2 conv and max-pool).
* ``width``: every stage has ``width`` times its channels (64·width, 128·width, 256·width,
  512·width); FedLeak's ResNet10_x3 and ResNet10_x5 are resnet10 with width 3 and 5.
* ``cut_skips``: residual blocks whose skip connection is cut, as in the SoK's Fig. 9 (Du et al.
  2025, Sec. 5.2.1), which cuts "the skip connection at different positions" of ResNet-18/34,
  one position per model, numbered #0, #1, ... from shallow to deep. A cut block computes
  relu(bn2(conv2(relu(bn1(conv1(x)))))) without adding its input; where the skip is a 1×1
  downsampling shortcut, that shortcut is removed too (it would get no gradient), after the
  weights are drawn, so that a cut model shares every other weight with the uncut one of the
  same seed. The SoK does
  not say how its numbers map to blocks; we read #i as the i-th block in forward order
  (resnet18: #0 = layer1.0, #1 = layer1.1, #2 = layer2.0, ...), see :func:`block_names`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError, did_you_mean
from evalgrid.models.options import RESNETS as ARCHITECTURES  # name -> blocks per stage, summary
from evalgrid.models.options import ResNetOptions

STAGE_CHANNELS = (64, 128, 256, 512)  # at width 1


@dataclass(frozen=True)
class Stem:
    kernel: int
    stride: int
    max_pool: bool


STEMS: dict[str, Stem] = {
    "cifar": Stem(kernel=3, stride=1, max_pool=False),  # the usual 32×32 variant: layer1 sees the full image
    "imagenet": Stem(kernel=7, stride=2, max_pool=True),  # torchvision's: 32×32 reaches layer1 as 8×8
}


def block_names(layers: tuple[int, ...]) -> list[str]:
    """The residual blocks in forward order: layer1.0, layer1.1, ..., layer4.N."""
    return [f"layer{stage}.{block}" for stage, count in enumerate(layers, start=1) for block in range(count)]


def parse_cut_skips(value: str, layers: tuple[int, ...], model: str) -> frozenset[str]:
    """The block names in ``value`` ('' → none, 'all' → every block); UserError on unknown names."""
    valid = block_names(layers)
    if value.strip() == "all":
        return frozenset(valid)
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in valid:
            raise UserError(f"model {model!r}: cut_skips names an unknown block {name!r}.{did_you_mean(name, valid)} "
                            f"Valid blocks: {', '.join(valid)}, or 'all'.")
    return frozenset(names)


class BasicBlock(nn.Module):
    """Two 3×3 conv+BN layers and, unless ``skip`` is False, the identity or 1×1-conv shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int, skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:  # built even when cut: see ResNet.drop_cut_shortcuts
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)

    def extra_repr(self) -> str:
        return "" if self.skip else "skip=cut"


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...], channels: int, num_classes: int, stem: Stem,
                 width: int = 1, cut: frozenset[str] = frozenset()):
        super().__init__()
        stage_channels = [c * width for c in STAGE_CHANNELS]
        self.conv1 = nn.Conv2d(channels, stage_channels[0], kernel_size=stem.kernel, stride=stem.stride,
                               padding=stem.kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(stage_channels[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem.max_pool else nn.Identity()
        in_channels = stage_channels[0]
        for stage, (count, out_channels) in enumerate(zip(layers, stage_channels), start=1):
            blocks = []
            for index in range(count):
                stride = 2 if stage > 1 and index == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride, skip=f"layer{stage}.{index}" not in cut))
                in_channels = out_channels
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():  # torchvision's initialisation, in its order
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.drop_cut_shortcuts()

    def drop_cut_shortcuts(self) -> None:
        """Remove the 1×1 shortcuts of cut blocks, after every weight was drawn: a cut model then
        holds the uncut model's weights at the same seed, minus those shortcuts, so that cut and
        uncut cells of one seed compare the same network."""
        for block in self.modules():
            if isinstance(block, BasicBlock) and not block.skip:
                block.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(options: ResNetOptions, info: DatasetInfo, architecture: str = "resnet18") -> ResNet:
    """``architecture`` names an entry of :data:`evalgrid.models.options.RESNETS`. Any resolution
    works: every stride-2 layer pads, so feature maps shrink to 1×1 and no further."""
    layers = ARCHITECTURES[architecture].layers
    cut = parse_cut_skips(options.cut_skips, layers, architecture)
    return ResNet(layers, info.channels, info.num_classes, STEMS[options.stem], options.width, cut)
