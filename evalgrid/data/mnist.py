"""MNIST (LeCun et al. 1998) read from a local copy in torchvision's on-disk layout,
``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, each file optionally
gzipped (``.gz``, as published); never downloaded.

We parse the IDX format ourselves (see :func:`read_idx`) and check what MNIST's files must
hold, so a damaged or foreign file fails with its path. A file is read only as far as its IDX
header announces, and the header must announce MNIST's shapes and at most MNIST's sample
counts first, so a crafted ``.gz`` cannot expand into more memory than the real files take.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from evalgrid.data.base import DatasetInfo, InMemoryImages, missing_file, require_data_root
from evalgrid.data.options import MnistOptions
from evalgrid.errors import UserError
from evalgrid.fl.threat_model import Normalization

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

# The published files' sample counts: a header may announce fewer (a subset), never more.
MAX_SAMPLES = {"train": 60_000, "test": 10_000}

# IDX: two zero bytes, a type code, the number of dimensions, then each dimension as a
# big-endian uint32, then the values in C order, big-endian.
IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


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


def preflight(options: MnistOptions, data_root: str | os.PathLike | None = None) -> int:
    """Both files of the split exist and hold MNIST's arrays (this reads them once); its image count."""
    return len(_read_split(options.split, data_root)[1])


def describe(options: MnistOptions, data_root: str | os.PathLike | None = None) -> DatasetInfo:
    return DatasetInfo(NAME, channels=1, resolution=SIDE, num_classes=NUM_CLASSES, normalization=NORMALIZATION)


def _read_split(split: str, data_root: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels (N,)."""
    root = require_data_root(NAME, data_root, f"{RAW_FOLDER.as_posix()}/", HOW_TO_GET)
    image_path, label_path = (_find(root, file) for file in FILES[split])
    limit = MAX_SAMPLES[split]
    images = _read(image_path, lambda shape: _check_shape(shape, (SIDE, SIDE), limit, "images"))
    labels = _read(label_path, lambda shape: _check_shape(shape, (), limit, "labels"))
    if images.dtype != np.uint8:
        raise _invalid(image_path, f"expected uint8 images, found {images.dtype.name}")
    if labels.dtype != np.uint8:
        raise _invalid(label_path, f"expected uint8 labels, found {labels.dtype.name}")
    if len(labels) != len(images):
        raise _invalid(label_path, f"it holds {len(labels)} labels for the {len(images)} images of {image_path}")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise _invalid(label_path, f"labels must lie in 0..{NUM_CLASSES - 1}, found {labels.max()}")
    return images, labels.astype(np.int64)


def _check_shape(shape: tuple[int, ...], sample: tuple[int, ...], limit: int, what: str) -> None:
    """MNIST's layout, from the header alone: (N, *sample) with N at most the published count."""
    if len(shape) != 1 + len(sample) or shape[1:] != sample:
        raise ValueError(f"expected {what} of shape (N{''.join(f', {side}' for side in sample)}), "
                         f"the header announces {shape}")
    if shape[0] > limit:
        raise ValueError(f"the header announces {shape[0]} {what}, more than MNIST's {limit}")


def _find(root: Path, file: str) -> Path:
    """``file`` in the raw folder, or its gzipped copy."""
    path = root / RAW_FOLDER / file
    for candidate in (path, path.with_name(file + ".gz")):
        if candidate.is_file():
            return candidate
    raise missing_file(NAME, path, root, HOW_TO_GET + f" {file}.gz instead of {file} is fine too.")


def _read(path: Path, check_shape) -> np.ndarray:
    """The IDX array in ``path`` (gzipped when it ends in .gz), read no further than its header
    announces once ``check_shape`` has accepted the announced shape."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as stream:
            head = _read_exactly(stream, 4)
            if head[:2] != b"\0\0" or head[2] not in IDX_TYPES:
                return read_idx(head)  # raises with the reason
            head += _read_exactly(stream, 4 * head[3])
            shape = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=head[3], offset=4))
            check_shape(shape)
            body = _read_exactly(stream, math.prod(shape) * IDX_TYPES[head[2]].itemsize)
            if stream.read(1):
                raise ValueError(f"it holds more data than its header announces ({shape})")
        return read_idx(head + body)
    except (OSError, EOFError, ValueError, zlib.error) as error:  # gzip raises all of these on damaged files
        raise _invalid(path, str(error)) from None


def _read_exactly(stream, count: int) -> bytes:
    content = stream.read(count)
    if len(content) != count:
        raise ValueError(f"the file ends early ({len(content)} of {count} bytes where its header announces more)")
    return content


def _invalid(path: Path, reason: str) -> UserError:
    return UserError(f"dataset {NAME!r}: {path} is not a valid MNIST IDX file: {reason}. Replace it with a "
                     f"fresh copy: {HOW_TO_GET}")
