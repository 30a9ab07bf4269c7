"""Tiny CIFAR-10/100 copies in the real on-disk format (file names, pickled dict keys, dtypes),
with random pixels and labels, for tests. Import as ``tests.fakedata`` or ``fakedata``."""

from __future__ import annotations

import pickle
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
