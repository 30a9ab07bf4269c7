"""MNIST (LeCun et al. 1998) read from a local copy in torchvision's on-disk layout,
``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, each file optionally
gzipped (``.gz``, as published); never downloaded.

We parse the IDX format ourselves (see :func:`read_idx`) and check what MNIST's files must
hold, so a damaged or foreign file fails with its path.
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from evalgrid.data.base import DatasetInfo, InMemoryImages, missing_file, require_data_root
from evalgrid.errors import UserError
from evalgrid.threat_model import Normalization

NAME = "mnist"
RAW_FOLDER = Path("MNIST") / "raw"
SIDE = 28
NUM_CLASSES = 10
FILES = {  # split -> (images, labels), as published and as torchvision names them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# The training set's pixel mean and std, the values torchvision's MNIST examples use.
NORMALIZATION = Normalization(mean=(0.1307,), std=(0.3081,))
HOW_TO_GET = (f"download it once on a machine with internet with torchvision.datasets.MNIST(ROOT, "
              f"download=True) and copy ROOT/{RAW_FOLDER.as_posix()} here (the .gz files are enough).")

# IDX: two zero bytes, a type code, the number of dimensions, then each dimension as a
# big-endian uint32, then the values in C order, big-endian.
IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True)
class MnistOptions:
    split: Literal["train", "test"] = "train"


def read_idx(content: bytes) -> np.ndarray:
    """The array an IDX file holds; ValueError with the reason when ``content`` is not one."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise ValueError("it does not start with an IDX magic number (two zero bytes)")
    type_code, ndim = content[2], content[3]
    if type_code not in IDX_TYPES:
        raise ValueError(f"unknown IDX type code 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise ValueError(f"the header is cut short ({len(content)} bytes for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(f"the header announces {shape} values of {dtype.name}, i.e. {expected} bytes, "
                         f"but the file has {len(content)}")
    return np.frombuffer(content, dtype=dtype, offset=header).reshape(shape)


def build(options: MnistOptions, data_root: str | os.PathLike | None = None) -> InMemoryImages:
    images, labels = _read_split(options.split, data_root)
    return InMemoryImages(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels),
                          describe(options, data_root))


def preflight(options: MnistOptions, data_root: str | os.PathLike | None = None) -> None:
    """Both files of the split exist and hold MNIST's arrays (this reads them once)."""
    _read_split(options.split, data_root)


def describe(options: MnistOptions, data_root: str | os.PathLike | None = None) -> DatasetInfo:
    return DatasetInfo(NAME, channels=1, resolution=SIDE, num_classes=NUM_CLASSES, normalization=NORMALIZATION)


def _read_split(split: str, data_root: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels (N,)."""
    root = require_data_root(NAME, data_root, f"{RAW_FOLDER.as_posix()}/", HOW_TO_GET)
    image_path, label_path = (_find(root, file) for file in FILES[split])
    images, labels = _read(image_path), _read(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise _invalid(image_path, f"expected uint8 images of shape (N, {SIDE}, {SIDE}), "
                                   f"found {images.dtype.name} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise _invalid(label_path, f"expected uint8 labels of shape (N,), found {labels.dtype.name} {labels.shape}")
    if len(labels) != len(images):
        raise _invalid(label_path, f"it holds {len(labels)} labels for the {len(images)} images of {image_path}")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise _invalid(label_path, f"labels must lie in 0..{NUM_CLASSES - 1}, found {labels.max()}")
    return images, labels.astype(np.int64)


def _find(root: Path, file: str) -> Path:
    """``file`` in the raw folder, or its gzipped copy."""
    path = root / RAW_FOLDER / file
    for candidate in (path, path.with_name(file + ".gz")):
        if candidate.is_file():
            return candidate
    raise missing_file(NAME, path, root, HOW_TO_GET + f" {file}.gz instead of {file} is fine too.")


def _read(path: Path) -> np.ndarray:
    try:
        content = path.read_bytes()
        if path.suffix == ".gz":
            content = gzip.decompress(content)
        return read_idx(content)
    except (OSError, EOFError, ValueError) as error:  # gzip raises all three on damaged files
        raise _invalid(path, str(error)) from error


def _invalid(path: Path, reason: str) -> UserError:
    return UserError(f"dataset {NAME!r}: {path} is not a valid MNIST IDX file: {reason}. Replace it with a "
                     f"fresh copy: {HOW_TO_GET}")
