"""SVHN cropped digits (Netzer et al. 2011) read from a local copy of the published
``{train,test}_32x32.mat`` files, never downloaded.

torchvision's ``SVHN(root)`` keeps these files directly in ``root``; evalgrid expects them one
level down, in ``ROOT/svhn/``, so that one data root holds every dataset. Each file is a
MATLAB v5 file with ``X`` uint8 (32, 32, 3, N) (row, column, channel, image) and ``y``
(N, 1) with labels 1..10, where 10 stands for the digit 0; like torchvision we map 10 to 0.
The files are read by :mod:`evalgrid.data.matfile`, not ``scipy.io.loadmat``, which crashes on
some damaged files; ``X`` may not announce more images than the published split has.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from evalgrid.data.base import DatasetInfo, InMemoryImages, missing_file, require_data_root
from evalgrid.data.matfile import MatFormatError, read_mat_arrays
from evalgrid.data.options import SvhnOptions
from evalgrid.errors import UserError
from evalgrid.fl.threat_model import Normalization

NAME = "svhn"
FOLDER = "svhn"
SIDE = 32
NUM_CLASSES = 10
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
MAX_SAMPLES = {"train": 73_257, "test": 26_032}  # the published splits' sizes
# Per-channel pixel mean and std of the SVHN training set as commonly used, e.g. in Zhao et
# al.'s dataset condensation code and DeepCore (PatrickZH/DeepCore, deepcore/datasets/svhn.py).
NORMALIZATION = Normalization(mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970))
HOW_TO_GET = (f"download the files once on a machine with internet with torchvision.datasets.SVHN("
              f"'ROOT/{FOLDER}', split='train', download=True) (and split='test'), which puts "
              f"{FILES['train']} and {FILES['test']} directly in ROOT/{FOLDER}/, and copy that folder here.")


def build(options: SvhnOptions, data_root: str | os.PathLike | None = None) -> InMemoryImages:
    images, labels = _read_split(options.split, data_root)
    return InMemoryImages(torch.from_numpy(images), torch.from_numpy(labels), describe(options, data_root))


def preflight(options: SvhnOptions, data_root: str | os.PathLike | None = None) -> int:
    """The split's file exists and holds SVHN's arrays (this reads it once); its image count."""
    return len(_read_split(options.split, data_root)[1])


def describe(options: SvhnOptions, data_root: str | os.PathLike | None = None) -> DatasetInfo:
    return DatasetInfo(NAME, channels=3, resolution=SIDE, num_classes=NUM_CLASSES, normalization=NORMALIZATION)


def _read_split(split: str, data_root: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, 32, 32) and int64 labels (N,) in 0..9."""
    root = require_data_root(NAME, data_root, f"{FOLDER}/", HOW_TO_GET)
    path = root / FOLDER / FILES[split]
    if not path.is_file():
        raise missing_file(NAME, path, root, HOW_TO_GET)
    limit = MAX_SAMPLES[split]
    try:
        content = read_mat_arrays(path.read_bytes(), {"X": lambda shape: _check_pixels(shape, limit),
                                                      "y": lambda shape: _check_labels(shape, limit)})
    except MatFormatError as error:
        raise _invalid(path, str(error)) from None
    except OSError as error:
        raise _invalid(path, f"it cannot be read ({error.strerror or error})") from None
    if "X" not in content or "y" not in content:
        raise _invalid(path, f"expected variables 'X' and 'y', found {sorted(content) or 'neither'}")
    pixels, raw_labels = content["X"], content["y"]
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[:3] != (SIDE, SIDE, 3):
        raise _invalid(path, f"'X' must be uint8 of shape ({SIDE}, {SIDE}, 3, N), "
                             f"found {pixels.dtype.name} {pixels.shape}")
    count = pixels.shape[3]
    if raw_labels.shape not in ((count, 1), (1, count)) or raw_labels.dtype.kind not in "iuf":
        raise _invalid(path, f"'y' must hold one number per image, shape ({count}, 1), "
                             f"found {raw_labels.dtype.name} {raw_labels.shape}")
    labels = raw_labels.reshape(-1)
    if count and not (np.all(labels == np.round(labels)) and labels.min() >= 1 and labels.max() <= 10):
        raise _invalid(path, f"'y' must hold the labels 1..10 (10 for the digit 0), "
                             f"found {labels.min()}..{labels.max()}")
    labels = labels.astype(np.int64) % 10  # 10 stands for the digit 0
    images = np.ascontiguousarray(pixels.transpose(3, 2, 0, 1))  # (row, column, channel, N) -> (N, C, H, W)
    return images, labels


def _check_pixels(shape: tuple[int, ...], limit: int) -> None:
    if len(shape) != 4 or shape[:3] != (SIDE, SIDE, 3):
        raise ValueError(f"expected shape ({SIDE}, {SIDE}, 3, N), found {shape}")
    if shape[3] > limit:
        raise ValueError(f"{shape[3]} images announced, more than the split's {limit}")


def _check_labels(shape: tuple[int, ...], limit: int) -> None:
    if len(shape) != 2 or 1 not in shape or max(shape) > limit:
        raise ValueError(f"expected shape (N, 1) with N at most {limit}, found {shape}")


def _invalid(path: Path, reason: str) -> UserError:
    return UserError(f"dataset {NAME!r}: {path} is not a valid SVHN .mat file: {reason}. Replace it with a "
                     f"fresh copy: {HOW_TO_GET}")
