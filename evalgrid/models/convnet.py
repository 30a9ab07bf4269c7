"""The ConvNet of Geiping et al. 2020 ("Inverting Gradients", reference code
inversefed/nn/models.py ``ConvNet``): eight conv+BatchNorm+ReLU layers and two 3×3
max-pools before one linear layer. Their "ConvNet64" (width 64) is the default.

The micro-design options are those the SoK (Du et al. 2025, Sec. 5.2.2, Table 4) varies on
this ConvNet. What the SoK states: the standard ConvNet "incorporates bias, employs ReLU
functions, and includes two max pooling layers and one dropout layer", with 3×3 kernels and
padding 1 in every convolution; its rows remove bias, ReLU, dropout or max-pooling, or set
every kernel to 1, 2 or 4, or every padding to 2 or 3. What it does not state, and we chose:

* where the dropout layer sits and its probability: Geiping's ConvNet has none, so we put
  the single ``nn.Dropout`` where classifiers usually carry theirs, between the flattened
  features and the linear layer, with probability 0.5 (``nn.Dropout``'s default);
* what "remove bias" removes: the bias of every convolution and of the linear layer
  (BatchNorm's shift is kept: it is a normalisation parameter, not a layer's bias);
* "remove ReLU" removes all eight ReLUs (no replacement activation); "remove MaxPool2d"
  removes both pools; kernel size and padding apply to all eight convolutions;
* the width (not given): Geiping's ConvNet64.

``convnet`` keeps Geiping's ConvNet exactly (no dropout); ``convnet_sok`` is the same class
whose defaults are the SoK's base ConvNet, so Table 4's rows are e.g.
``{ name = "convnet_sok", bias = false }``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.models.options import ConvNetOptions, ConvNetSoKOptions  # noqa: F401 - the second, re-exported

# Output channels of conv0..conv7 as multiples of the width; max-pools follow conv5 and conv7.
_MULTIPLES = (1, 2, 2, 4, 4, 4, 4, 4)
_POOL_AFTER = {5: "pool0", 7: "pool1"}
_POOL = 3  # MaxPool2d(3): kernel 3, stride 3, no padding


def feature_side(resolution: int, options: ConvNetOptions) -> int:
    """The side of the last feature map, computed layer by layer; 0 when it vanishes."""
    side = resolution
    for index in range(len(_MULTIPLES)):
        side = side + 2 * options.padding - options.kernel_size + 1
        if side < 1:
            return 0
        if options.max_pool and index in _POOL_AFTER:
            side = (side - _POOL) // _POOL + 1 if side >= _POOL else 0
            if side < 1:
                return 0
    return side


def minimum_resolution(options: ConvNetOptions) -> int:
    """The smallest image side for which no feature map vanishes."""
    resolution = 1
    while feature_side(resolution, options) < 1:  # side grows with resolution: this ends
        resolution += 1
    return resolution


def _conv_block(index: int, in_channels: int, out_channels: int,
                options: ConvNetOptions) -> list[tuple[str, nn.Module]]:
    block: list[tuple[str, nn.Module]] = [
        (f"conv{index}", nn.Conv2d(in_channels, out_channels, kernel_size=options.kernel_size,
                                   padding=options.padding, bias=options.bias)),
        (f"bn{index}", nn.BatchNorm2d(out_channels))]
    if options.relu:
        block.append((f"relu{index}", nn.ReLU()))
    return block


class ConvNet(nn.Module):
    """Module and parameter names match the reference, so its state dicts load unchanged."""

    def __init__(self, channels: int, resolution: int, num_classes: int,
                 options: ConvNetOptions = ConvNetOptions(), name: str = "convnet"):
        super().__init__()
        side = feature_side(resolution, options)
        if side < 1:
            minimum = minimum_resolution(options)
            raise UserError(
                f"model {name!r} needs images of at least {minimum}×{minimum} pixels with kernel_size = "
                f"{options.kernel_size}, padding = {options.padding} and max_pool = "
                f"{str(options.max_pool).lower()}; this dataset's are {resolution}×{resolution}: set the grid "
                f"factor resolution = [{minimum}] or more, or change these options.")
        width = options.width
        layers: list[tuple[str, nn.Module]] = []
        in_channels = channels
        for index, multiple in enumerate(_MULTIPLES):
            if index == 6:
                # The reference lists conv6/bn6/relu6 twice under one OrderedDict key: the first
                # copy is built (drawing from the RNG), then replaced by the second. Drawing it too
                # makes a given seed give the reference's weights.
                _conv_block(6, in_channels, multiple * width, options)
            layers += _conv_block(index, in_channels, multiple * width, options)
            if options.max_pool and index in _POOL_AFTER:
                layers.append((_POOL_AFTER[index], nn.MaxPool2d(_POOL)))
            in_channels = multiple * width
        layers.append(("flatten", nn.Flatten()))
        if options.dropout > 0:
            layers.append(("dropout", nn.Dropout(options.dropout)))
        # 4·width channels of side × side: 36·width at 32×32 with the defaults
        layers.append(("linear", nn.Linear(4 * width * side * side, num_classes, bias=options.bias)))
        self.model = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.model(x)


def build(options: ConvNetOptions, info: DatasetInfo, name: str = "convnet") -> ConvNet:
    """``name`` is the registry name, for error messages."""
    return ConvNet(info.channels, info.resolution, info.num_classes, options, name)
