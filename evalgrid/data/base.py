"""The dataset interface: image tensors in [0, 1] with labels and public statistics, plus what
every dataset module shares: where the data root comes from, the errors that say how to get
the files, and :func:`at_resolution`, the grid's resolution factor."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from evalgrid.data.root import DATA_ROOT_ENV, resolve_data_root  # noqa: F401 - re-exported for readers
from evalgrid.errors import MissingInput
from evalgrid.fl.threat_model import Normalization

ROOT_SOURCE = f"the grid's `[data] root` (relative to the grid file) or ${DATA_ROOT_ENV}"

# Pixel statistics of the ImageNet training set, as torchvision's pretrained models use them.
IMAGENET_NORMALIZATION = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@dataclass(frozen=True)
class DatasetInfo:
    """Public facts about a dataset that models and attackers may use."""

    name: str
    channels: int
    resolution: int  # images are square: resolution × resolution
    num_classes: int
    normalization: Normalization


@runtime_checkable
class ImageDataset(Protocol):
    info: DatasetInfo

    @property
    def labels(self) -> torch.Tensor:
        """Every label (N,) int64 in index order, without loading images (for label-skew splits)."""
        ...

    def __len__(self) -> int: ...

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) float32 in [0, 1] and labels (B,) int64."""
        ...


def require_data_root(dataset: str, data_root: str | os.PathLike | None, contents: str,
                      how_to_get: str) -> Path:
    """The data root as a Path, or a MissingInput saying how to set one and what it must hold."""
    if data_root is None:
        raise MissingInput(
            f"dataset {dataset!r} needs a local copy of its files; evalgrid never downloads. Set "
            f"`[data] root = \"/path\"` in the grid file or the {DATA_ROOT_ENV} environment variable to "
            f"the folder that contains {contents}. To get it: {how_to_get}")
    return Path(data_root).expanduser()


def missing_file(dataset: str, path: Path, root: Path, how_to_get: str) -> MissingInput:
    return MissingInput(
        f"dataset {dataset!r}: missing {path}. The data root {root} comes from {ROOT_SOURCE}. "
        f"To get the file: {how_to_get}", path)


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


def at_resolution(dataset: ImageDataset, side: int) -> ImageDataset:
    """``dataset`` with side × side images (the grid's resolution factor; 0 or the native side
    returns ``dataset`` itself).

    In-memory datasets get a view that resizes each batch (bilinear, antialiased, clamped to
    [0, 1]). Datasets that decode files per batch (image folders, ImageNet) offer
    ``resized(side)`` and are re-decoded from the source files at that size instead, so a
    large side gets the detail the files hold rather than an upsampled small image.
    """
    if side < 0:
        raise ValueError(f"resolution must be >= 0 (0: native), got {side}")
    if side == 0 or side == dataset.info.resolution:
        return dataset
    resized = getattr(dataset, "resized", None)
    if callable(resized):
        return resized(side)
    return ResizedImages(dataset, side)


class ResizedImages:
    """A view of a dataset whose batches are resized to ``side`` × ``side``."""

    def __init__(self, dataset: ImageDataset, side: int):
        self.source, self.side = dataset, side
        self.info = dataclasses.replace(dataset.info, resolution=side)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def labels(self) -> torch.Tensor:
        return self.source.labels

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.source.batch(indices)
        resized = F.interpolate(images, size=(self.side, self.side), mode="bilinear",
                                align_corners=False, antialias=True)
        return resized.clamp_(0, 1), labels
