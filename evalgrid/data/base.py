"""The dataset interface: image tensors in [0, 1] with labels and public statistics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from evalgrid.threat_model import Normalization

DATA_ROOT_ENV = "EVALGRID_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """Public facts about a dataset that models and attackers may use."""

    name: str
    channels: int
    resolution: int  # images are square: resolution × resolution
    num_classes: int
    normalization: Normalization


class ImageDataset(Protocol):
    info: DatasetInfo

    def __len__(self) -> int: ...

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) float32 in [0, 1] and labels (B,) int64."""
        ...


def resolve_data_root(configured: str | None) -> Path | None:
    """The data root: the grid's ``[data] root`` if set, else ``$EVALGRID_DATA``, else None."""
    value = configured or os.environ.get(DATA_ROOT_ENV)
    return Path(value).expanduser() if value else None


class InMemoryImages:
    """A dataset split held in memory: images as float in [0, 1] or uint8 (converted per batch)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo):
        self._images, self._labels, self.info = images, labels, info

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        images = self._images[index]
        images = images.float().div_(255) if images.dtype == torch.uint8 else images.clone()
        return images, self._labels[index].clone()
