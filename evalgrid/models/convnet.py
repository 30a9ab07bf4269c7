"""The ConvNet of Geiping et al. 2020 ("Inverting Gradients", reference code
inversefed/nn/models.py ``ConvNet``): eight 3×3 conv+BatchNorm+ReLU layers and two 3×3
max-pools before one linear layer. Their "ConvNet64" (width 64) is the default."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.options import option

# Output channels of conv0..conv7 as multiples of the width; max-pools follow conv5 and conv7.
_MULTIPLES = (1, 2, 2, 4, 4, 4, 4, 4)
_POOL_AFTER = {5: "pool0", 7: "pool1"}


@dataclass(frozen=True)
class ConvNetOptions:
    width: int = option(64, minimum=1, doc="channels of conv0 (later layers use 2× and 4×); Geiping's ConvNet64")


def _conv_block(index: int, in_channels: int, out_channels: int) -> list[tuple[str, nn.Module]]:
    return [(f"conv{index}", nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)),
            (f"bn{index}", nn.BatchNorm2d(out_channels)),
            (f"relu{index}", nn.ReLU())]


class ConvNet(nn.Module):
    """Module and parameter names match the reference, so its state dicts load unchanged."""

    def __init__(self, channels: int, resolution: int, num_classes: int, width: int):
        super().__init__()
        side = resolution // 3 // 3  # two MaxPool2d(3) with stride 3, no padding
        if side < 1:
            raise UserError(f"model 'convnet' needs images of at least 9×9 pixels (two 3×3 max-pools); "
                            f"this dataset's are {resolution}×{resolution}.")
        layers: list[tuple[str, nn.Module]] = []
        in_channels = channels
        for index, multiple in enumerate(_MULTIPLES):
            if index == 6:
                # The reference lists conv6/bn6/relu6 twice under one OrderedDict key: the first
                # copy is built (drawing from the RNG), then replaced by the second. Drawing it too
                # makes a given seed give the reference's weights.
                _conv_block(6, in_channels, multiple * width)
            layers += _conv_block(index, in_channels, multiple * width)
            if index in _POOL_AFTER:
                layers.append((_POOL_AFTER[index], nn.MaxPool2d(3)))
            in_channels = multiple * width
        layers += [("flatten", nn.Flatten()),
                   ("linear", nn.Linear(4 * width * side * side, num_classes))]  # 36·width at 32×32
        self.model = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.model(x)


def build(options: ConvNetOptions, info: DatasetInfo) -> ConvNet:
    return ConvNet(info.channels, info.resolution, info.num_classes, options.width)
