"""scikit-learn's bundled 8×8 handwritten digits, upsampled: ships with the package, no download."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evalgrid.data.base import DatasetInfo, InMemoryImages
from evalgrid.data.options import DigitsOptions
from evalgrid.fl.threat_model import Normalization

TRAIN_FRACTION = 0.8  # the first 80% of the 1,797 images form the train split, the rest test


def load_split(options: DigitsOptions) -> InMemoryImages:
    """Grayscale digits 0-9 resized bilinearly from 8×8 to ``resolution``; normalisation
    statistics over all 1,797 images."""
    everything, labels = _upsampled(options.resolution)
    cut = int(len(labels) * TRAIN_FRACTION)
    part = slice(0, cut) if options.split == "train" else slice(cut, None)
    return InMemoryImages(everything[part].contiguous(), labels[part].contiguous(), _info_of(everything))


def build(options: DigitsOptions, data_root=None) -> InMemoryImages:
    return load_split(options)


def describe(options: DigitsOptions, data_root=None) -> DatasetInfo:
    """The public facts; the statistics depend on the resolution only and are cached per resolution."""
    return _info(options.resolution)


@functools.lru_cache(maxsize=16)
def _info(resolution: int) -> DatasetInfo:
    return _info_of(_upsampled(resolution)[0])


def _info_of(everything: torch.Tensor) -> DatasetInfo:
    resolution = everything.shape[-1]
    stats = Normalization(mean=(float(everything.mean()),), std=(float(everything.std()),))
    return DatasetInfo("digits", channels=1, resolution=resolution, num_classes=10, normalization=stats)


def _upsampled(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images (N, 1, resolution, resolution) in [0, 1] and their labels."""
    table = _bundled_table()
    pixels = torch.from_numpy((table[:, :-1].reshape(-1, 8, 8) / 16.0).astype(np.float32)).unsqueeze(1)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return F.interpolate(pixels, size=resolution, mode="bilinear", align_corners=False).clamp(0, 1), labels


def _bundled_table() -> np.ndarray:
    """scikit-learn's digits.csv.gz (64 pixel columns in 0-16, then the label), read directly:
    the same file ``sklearn.datasets.load_digits`` reads, without importing scikit-learn (0.5 s)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits dataset ships with scikit-learn, which is not installed: "
                                  "pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as file:
        return np.loadtxt(file, delimiter=",")
