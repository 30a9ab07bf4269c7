"""A one-hidden-layer perceptron: flatten → Linear(C·H·W, hidden) with bias → ReLU →
Linear(hidden, classes), i.e. f(x) = W₂ relu(W₁ x + b₁) + b₂, with PyTorch's default weights.
Its first layer is the fully connected layer with bias that ``linear_leak`` inverts."""

from __future__ import annotations

from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid_example_plugin.options import MLPOptions


def build(options: MLPOptions, info: DatasetInfo) -> nn.Module:
    """The MLP sized to the dataset: C·H·W inputs, ``options.hidden`` units, one output per class."""
    inputs = info.channels * info.resolution * info.resolution
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, options.hidden, bias=True), nn.ReLU(),
                         nn.Linear(options.hidden, info.num_classes))
