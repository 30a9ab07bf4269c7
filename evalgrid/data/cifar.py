"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) read from a local copy in torchvision's on-disk
layout, never downloaded.

We read the pickled batches ourselves instead of through ``torchvision.datasets``, which
checks md5 sums; we check the format instead (keys, dtype, shapes, label range), so a
damaged or foreign file fails with its path. The batches are pickles: unpickling only
admits the numpy array constructors, but pickle is no security boundary, so the data
root must be a folder you trust.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from evalgrid.data.base import DATA_ROOT_ENV, DatasetInfo, InMemoryImages
from evalgrid.errors import UserError
from evalgrid.threat_model import Normalization

SIDE = 32
ROW_LENGTH = 3 * SIDE * SIDE  # one image per row: the red, green, blue planes, each row-major


@dataclass(frozen=True)
class CifarOptions:
    split: Literal["train", "test"] = "train"


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

    def preflight(self, options: CifarOptions, data_root: str | os.PathLike | None = None) -> None:
        """Every file of the split exists and is a valid batch (this reads them once)."""
        for path in self._split_files(options.split, data_root):
            self._read_batch(path)

    def _split_files(self, split: str, data_root: str | os.PathLike | None) -> list[Path]:
        if data_root is None:
            raise UserError(
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
                raise UserError(
                    f"dataset {self.name!r}: missing file {path}. The data root {root} must be the "
                    f"folder that contains {self.folder}/ with {', '.join(self.splits[split])}, as "
                    f"torchvision.datasets.{self.torchvision_class}(root, download=True) leaves it.")
        return paths

    def _read_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """The uint8 (N, 3072) rows and int64 (N,) labels of one batch file."""
        try:
            with open(path, "rb") as f:
                batch = _ArrayUnpickler(f, encoding="bytes").load()
        except Exception as error:  # any failure to parse means the file is not a batch
            raise self._invalid(path, f"it cannot be unpickled ({type(error).__name__}: {error})") from error
        if not isinstance(batch, dict) or b"data" not in batch or self.label_key not in batch:
            raise self._invalid(path, f"expected a dict with keys b'data' and {self.label_key!r}")
        data, labels = batch[b"data"], np.asarray(batch[self.label_key])
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == ROW_LENGTH):
            found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise self._invalid(path, f"b'data' must be uint8 of shape (N, {ROW_LENGTH}), found {found}")
        if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
            raise self._invalid(path, f"{self.label_key!r} must hold one integer per image "
                                      f"({len(data)}), found {labels.dtype} {labels.shape}")
        if len(labels) and not (0 <= labels.min() and labels.max() < self.num_classes):
            raise self._invalid(path, f"labels must lie in 0..{self.num_classes - 1}, found "
                                      f"{labels.min()}..{labels.max()}")
        return data, labels.astype(np.int64)

    def _invalid(self, path: Path, reason: str) -> UserError:
        return UserError(f"dataset {self.name!r}: {path} is not a valid {self.title} batch: {reason}. "
                         f"Replace {path.parent} with a fresh copy from "
                         f"torchvision.datasets.{self.torchvision_class}(root, download=True).")


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the globals that pickled numpy arrays and bytes need, so a batch file
    cannot name arbitrary callables (a hardening, not a sandbox)."""

    ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        with warnings.catch_warnings():  # numpy 2 warns about the numpy.core names old files use
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


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
