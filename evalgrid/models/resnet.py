"""ResNets built by torchvision (He et al. 2016), randomly initialised (weights are never
fetched), with the first convolution adapted to the dataset's channels and a choice of stem.

A depth is one entry in :data:`ARCHITECTURES`; the model registry registers each entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from evalgrid.data.base import DatasetInfo


@dataclass(frozen=True)
class Architecture:
    block: str  # the residual block class in torchvision.models.resnet: "BasicBlock" or "Bottleneck"
    layers: tuple[int, int, int, int]  # residual blocks in layer1..layer4
    summary: str


ARCHITECTURES: dict[str, Architecture] = {
    "resnet18": Architecture("BasicBlock", (2, 2, 2, 2),
                             "torchvision's ResNet-18, random init; 'cifar' (default) or 'imagenet' stem"),
}


@dataclass(frozen=True)
class Stem:
    kernel: int
    stride: int
    max_pool: bool


STEMS: dict[str, Stem] = {
    "cifar": Stem(kernel=3, stride=1, max_pool=False),  # the usual 32×32 variant: layer1 sees the full image
    "imagenet": Stem(kernel=7, stride=2, max_pool=True),  # torchvision's: 32×32 reaches layer1 as 8×8
}


@dataclass(frozen=True)
class ResNetOptions:
    stem: Literal["cifar", "imagenet"] = "cifar"


def build(options: ResNetOptions, info: DatasetInfo, architecture: str = "resnet18") -> nn.Module:
    """``architecture`` names an entry of :data:`ARCHITECTURES`; with 3 channels and the
    'imagenet' stem, a seed gives exactly ``torchvision.models.<architecture>(weights=None)``."""
    from torchvision.models import resnet  # deferred: importing torchvision takes about a second

    spec, stem = ARCHITECTURES[architecture], STEMS[options.stem]
    model = resnet.ResNet(getattr(resnet, spec.block), list(spec.layers), num_classes=info.num_classes)
    if info.channels != 3 or stem != STEMS["imagenet"]:
        model.conv1 = nn.Conv2d(info.channels, model.conv1.out_channels, kernel_size=stem.kernel,
                                stride=stem.stride, padding=stem.kernel // 2, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's init
    if not stem.max_pool:
        model.maxpool = nn.Identity()
    return model
