"""Tiny dataset copies in the real on-disk formats (file names, layouts, keys, dtypes), with
random pixels and labels, for tests: CIFAR-10/100 pickles, MNIST IDX files, SVHN .mat files,
image-folder trees and ImageNet's sorted validation set. Import as ``tests.fakedata`` or
``fakedata``."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROW_LENGTH = 3 * 32 * 32
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


class Split(NamedTuple):
    """What was written for one split, in file order: ``data`` uint8 (N, 3072) rows exactly as
    stored (R, G, B planes, each row-major 32×32) and ``labels`` int64 (N,)."""

    data: np.ndarray
    labels: np.ndarray


def write_tiny_cifar10(root, n_train: int = 10, n_test: int = 4, seed: int = 0) -> dict[str, Split]:
    """Write ``<root>/cifar-10-batches-py/`` (data_batch_1..5, test_batch, batches.meta);
    the train images are spread over the five batches in order."""
    rng = np.random.default_rng(seed)
    folder = _folder(root, "cifar-10-batches-py")
    train, test = _random_split(rng, n_train, 10), _random_split(rng, n_test, 10)
    for index, (file, part) in enumerate(zip(CIFAR10_TRAIN_FILES, np.array_split(np.arange(n_train), 5)), 1):
        _dump(folder / file, _cifar10_batch(f"training batch {index} of 5", train.data[part], train.labels[part]))
    _dump(folder / "test_batch", _cifar10_batch("testing batch 1 of 1", test.data, test.labels))
    _dump(folder / "batches.meta", {b"num_cases_per_batch": 10000, b"num_vis": ROW_LENGTH,
                                    b"label_names": [f"class{i}".encode() for i in range(10)]})
    return {"train": train, "test": test}


def write_tiny_cifar100(root, n_train: int = 10, n_test: int = 4, seed: int = 0) -> dict[str, Split]:
    """Write ``<root>/cifar-100-python/`` (train, test, meta); labels are the fine labels."""
    rng = np.random.default_rng(seed)
    folder = _folder(root, "cifar-100-python")
    written = {"train": _random_split(rng, n_train, 100), "test": _random_split(rng, n_test, 100)}
    for split, part in written.items():
        _dump(folder / split, {
            b"filenames": [f"image_{i}.png".encode() for i in range(len(part.labels))],
            b"batch_label": f"{split}ing batch 1 of 1".encode(),
            b"fine_labels": part.labels.tolist(),
            b"coarse_labels": (part.labels // 5).tolist(),
            b"data": part.data,
        })
    _dump(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return written


def _random_split(rng: np.random.Generator, n: int, num_classes: int) -> Split:
    data = rng.integers(0, 256, size=(n, ROW_LENGTH), dtype=np.uint8)
    return Split(data, rng.integers(0, num_classes, size=n, dtype=np.int64))


def _cifar10_batch(batch_label: str, data: np.ndarray, labels: np.ndarray) -> dict:
    return {b"batch_label": batch_label.encode(), b"labels": labels.tolist(), b"data": data,
            b"filenames": [f"image_{i}.png".encode() for i in range(len(labels))]}


def _folder(root, name: str) -> Path:
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _dump(path: Path, batch: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)  # the published files are protocol-2 pickles too


# ---- MNIST ------------------------------------------------------------------------------

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """``array`` as an IDX file: magic (0, 0, type, ndim), big-endian uint32 dims, values."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_tiny_mnist(root, n_train: int = 10, n_test: int = 4, gz: bool = False, seed: int = 0) -> dict[str, Split]:
    """Write ``<root>/MNIST/raw/`` as torchvision leaves it (only the ``.gz`` files when ``gz``);
    ``data`` is uint8 (N, 28, 28)."""
    rng = np.random.default_rng(seed)
    folder = _folder(root, "MNIST/raw")
    written = {}
    for split, count in (("train", n_train), ("test", n_test)):
        part = Split(rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8),
                     rng.integers(0, 10, size=count, dtype=np.int64))
        for file, array in zip(MNIST_FILES[split], (part.data, part.labels.astype(np.uint8))):
            content = idx_bytes(array)
            if gz:
                (folder / (file + ".gz")).write_bytes(gzip.compress(content))
            else:
                (folder / file).write_bytes(content)
        written[split] = part
    return written


# ---- SVHN -------------------------------------------------------------------------------

def write_tiny_svhn(root, n_train: int = 10, n_test: int = 4, seed: int = 0) -> dict[str, Split]:
    """Write ``<root>/svhn/{train,test}_32x32.mat`` with torchvision's keys: ``X`` uint8
    (32, 32, 3, N) and ``y`` uint8 (N, 1) in 1..10, 10 for the digit 0. Returns ``data`` as
    uint8 (N, 3, 32, 32) and ``labels`` as digits 0..9; the first image of each split is a 0."""
    import scipy.io

    rng = np.random.default_rng(seed)
    folder = _folder(root, "svhn")
    written = {}
    for split, count in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)
        digits = rng.integers(0, 10, size=count, dtype=np.int64)
        digits[:1] = 0
        stored = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": stored})
        written[split] = Split(images, digits)
    return written


# ---- image folders and ImageNet ---------------------------------------------------------

def write_image_folder(path, classes=("a", "b"), per_class: int = 3, size=8, ext: str = ".png",
                       seed: int = 0) -> dict[str, list[tuple[Path, np.ndarray]]]:
    """Write ``path/<class>/img_NNN<ext>`` with random RGB images of ``size`` (an int for square
    images, or (width, height)). Returns class -> [(file, uint8 (H, W, 3) pixels as written)],
    in sorted file order. JPEG is lossy: compare those with what PIL decodes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = (size, size) if isinstance(size, int) else size
    written = {}
    for name in classes:
        folder = _folder(path, name)
        written[name] = []
        for index in range(per_class):
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            file = folder / f"img_{index:03d}{ext}"
            Image.fromarray(pixels).save(file)
            written[name].append((file, pixels))
    return written


def imagenet_wnids(count: int = 1000) -> list[str]:
    """Distinct, sorted WordNet-id-like folder names (n + 8 digits), as ImageNet's classes."""
    return [f"n{1440764 + 1000 * index:08d}" for index in range(count)]


def write_tiny_imagenet_val(root, per_class: int = 1, size: int = 8, seed: int = 0) -> list[str]:
    """Write ``<root>/imagenet/val/<wnid>/ILSVRC2012_val_NNNNNNNN.JPEG`` for 1000 wnids, as
    torchvision's ImageNet(root, split="val") sorts the validation images. Returns the wnids."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    wnids = imagenet_wnids()
    number = 0
    for wnid in wnids:
        folder = _folder(root, f"imagenet/val/{wnid}")
        for _ in range(per_class):
            number += 1
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"ILSVRC2012_val_{number:08d}.JPEG", format="JPEG")
    return wnids
