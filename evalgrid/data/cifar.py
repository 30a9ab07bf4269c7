"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) read from a local copy in torchvision's on-disk
layout, never downloaded.

We read the pickled batches ourselves instead of through ``torchvision.datasets``, which
checks md5 sums; we check the format instead (keys, dtype, shapes, label range), so a
damaged or foreign file fails with its path. The batches are pickles, and they are never
unpickled: :mod:`evalgrid.data.pickled` parses their opcode stream and builds the arrays
itself, so a crafted file can name no callable and forge no numpy object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evalgrid.data.base import DATA_ROOT_ENV, DatasetInfo, InMemoryImages
from evalgrid.data.options import CifarOptions
from evalgrid.data.pickled import PickleFormatError, read_pickled_data
from evalgrid.errors import MissingInput, UserError
from evalgrid.fl.threat_model import Normalization

SIDE = 32
ROW_LENGTH = 3 * SIDE * SIDE  # one image per row: the red, green, blue planes, each row-major


@dataclass(frozen=True, eq=False)  # one instance per variant; hashed by identity
class CifarFormat:
    """Where one CIFAR variant lives under the data root and what its batch files hold."""

    name: str  # the registry name, e.g. "cifar10"
    title: str  # e.g. "CIFAR-10"
    folder: str  # the folder torchvision extracts under the root
    splits: dict[str, tuple[str, ...]]  # split -> batch files, read and concatenated in this order
    label_key: bytes
    num_classes: int
    normalization: Normalization
    torchvision_class: str  # named in the how-to-get-it message

    def build(self, options: CifarOptions, data_root: str | os.PathLike | None = None) -> InMemoryImages:
        parts = [self._read_batch(path) for path in self._split_files(options.split, data_root)]
        rows = np.concatenate([data for data, _ in parts])
        labels = np.concatenate([labels for _, labels in parts])
        images = torch.from_numpy(rows.reshape(-1, 3, SIDE, SIDE).copy())
        return InMemoryImages(images, torch.from_numpy(labels), self.describe(options, data_root))

    def describe(self, options: CifarOptions, data_root: str | os.PathLike | None = None) -> DatasetInfo:
        """The public facts; reads no file."""
        return DatasetInfo(self.name, channels=3, resolution=SIDE, num_classes=self.num_classes,
                           normalization=self.normalization)

    def preflight(self, options: CifarOptions, data_root: str | os.PathLike | None = None) -> int:
        """Every file of the split exists and is a valid batch (this reads them once); the split's image count."""
        return sum(len(self._read_batch(path)[1]) for path in self._split_files(options.split, data_root))

    def _split_files(self, split: str, data_root: str | os.PathLike | None) -> list[Path]:
        if data_root is None:
            raise MissingInput(
                f"dataset {self.name!r} needs a local copy of {self.title}; evalgrid never downloads. "
                f"Set `[data] root = \"/path\"` in the grid file or the {DATA_ROOT_ENV} environment "
                f"variable to the folder that contains {self.folder}/. To get it, run once on a "
                f"machine with internet: python -c \"import torchvision; "
                f"torchvision.datasets.{self.torchvision_class}('/path', download=True)\" "
                f"(and copy /path to this machine if that is another one).")
        root = Path(data_root).expanduser()
        paths = [root / self.folder / file for file in self.splits[split]]
        for path in paths:
            if not path.is_file():
                raise MissingInput(
                    f"dataset {self.name!r}: missing file {path}. The data root {root} must be the "
                    f"folder that contains {self.folder}/ with {', '.join(self.splits[split])}, as "
                    f"torchvision.datasets.{self.torchvision_class}(root, download=True) leaves it.", path)
        return paths

    def _read_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """The uint8 (N, 3072) rows and int64 (N,) labels of one batch file."""
        try:
            batch = read_pickled_data(path.read_bytes())
        except PickleFormatError as error:
            raise self._invalid(path, f"it is not a pickle of plain data ({error})") from None
        except OSError as error:
            raise self._invalid(path, f"it cannot be read ({error.strerror or error})") from None
        if not isinstance(batch, dict) or b"data" not in batch or self.label_key not in batch:
            raise self._invalid(path, f"expected a dict with keys b'data' and {self.label_key!r}")
        data, labels = batch[b"data"], batch[self.label_key]
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == ROW_LENGTH):
            found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise self._invalid(path, f"b'data' must be uint8 of shape (N, {ROW_LENGTH}), found {found}")
        labels = self._labels(path, labels, len(data))
        return data, labels

    def _labels(self, path: Path, labels: object, count: int) -> np.ndarray:
        """The int64 labels: a list (or 1-D integer array) of one class index per image."""
        if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
            values = labels.astype(np.int64) if labels.dtype.kind == "i" or labels.dtype.itemsize < 8 else None
        elif isinstance(labels, list) and all(type(label) is int for label in labels):
            values = (np.array(labels, dtype=np.int64)
                      if all(-2**63 <= label < 2**63 for label in labels) else None)
        else:
            values = None
        described = (f"{labels.dtype} {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__)
        if values is None or values.shape != (count,):
            raise self._invalid(path, f"{self.label_key!r} must hold one integer per image "
                                      f"({count}), found {described}")
        if len(values) and not (0 <= values.min() and values.max() < self.num_classes):
            raise self._invalid(path, f"labels must lie in 0..{self.num_classes - 1}, found "
                                      f"{values.min()}..{values.max()}")
        return values

    def _invalid(self, path: Path, reason: str) -> UserError:
        return UserError(f"dataset {self.name!r}: {path} is not a valid {self.title} batch: {reason}. "
                         f"Replace {path.parent} with a fresh copy from "
                         f"torchvision.datasets.{self.torchvision_class}(root, download=True).")


# Normalization: the training sets' per-channel pixel mean and std (public statistics).
CIFAR10 = CifarFormat(
    name="cifar10", title="CIFAR-10", folder="cifar-10-batches-py",
    splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    label_key=b"labels", num_classes=10,
    normalization=Normalization(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    torchvision_class="CIFAR10")
CIFAR100 = CifarFormat(
    name="cifar100", title="CIFAR-100", folder="cifar-100-python",
    splits={"train": ("train",), "test": ("test",)},
    label_key=b"fine_labels", num_classes=100,
    normalization=Normalization(mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)),
    torchvision_class="CIFAR100")
