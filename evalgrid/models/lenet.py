"""LeNet as used by DLG (Zhu et al. 2019, reference code): three 5×5 sigmoid convolutions
and one linear layer, every weight and bias drawn from U(-0.5, 0.5)."""

from __future__ import annotations

from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.models.options import LeNetOptions


def _conv_out(size: int, kernel: int = 5, stride: int = 1, padding: int = 2) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class LeNet(nn.Module):
    def __init__(self, channels: int, resolution: int, num_classes: int, init_range: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 12, kernel_size=5, padding=2, stride=2), nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=2), nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=1), nn.Sigmoid(),
        )
        side = _conv_out(_conv_out(_conv_out(resolution, stride=2), stride=2))
        self.fc = nn.Linear(12 * side * side, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.uniform_(module.weight, -init_range, init_range)
                nn.init.uniform_(module.bias, -init_range, init_range)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))


def build(options: LeNetOptions, info: DatasetInfo) -> LeNet:
    return LeNet(info.channels, info.resolution, info.num_classes, options.init_range)
