"""Natural-image crops from the two photographs scikit-learn ships (``china.jpg`` and
``flower.jpg``, 427×640 colour, CC BY 2.0): a stand-in for CIFAR-like data that needs no download.

Upsampled 8×8 digits say little about natural images (smooth strokes on a flat background);
these crops have texture, edges and colour. Each photo is cut into square windows of
``window`` pixels at a stride of window/2 (overlapping halves), each resized to ``resolution``
(bilinear, antialiased). A window's label names its photo and the fifth of the photo's width
its centre lies in: 10 classes (photo × 5), only so that the model has a classification
objective with several classes; the labels carry no semantics. Every fifth window (in raster
order over both photos) is the test split, the rest train. Normalisation: per-channel mean and
std over all windows at the resolution.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evalgrid.data.base import DatasetInfo, InMemoryImages
from evalgrid.data.options import PhotoOptions
from evalgrid.fl.threat_model import Normalization

PHOTOS = ("china.jpg", "flower.jpg")
BANDS = 5  # horizontal fifths per photo: 2 × 5 = 10 classes
TEST_EVERY = 5  # every fifth window is in the test split


def build(options: PhotoOptions, data_root=None) -> InMemoryImages:
    images, labels = _crops(options.resolution, options.window)
    test = torch.arange(len(labels)) % TEST_EVERY == TEST_EVERY - 1
    part = test if options.split == "test" else ~test
    return InMemoryImages(images[part].contiguous(), labels[part].contiguous(), _info_of(images))


def describe(options: PhotoOptions, data_root=None) -> DatasetInfo:
    return _info_of(_crops(options.resolution, options.window)[0])


def _info_of(images: torch.Tensor) -> DatasetInfo:
    mean = tuple(float(m) for m in images.mean(dim=(0, 2, 3)))
    std = tuple(float(s) for s in images.std(dim=(0, 2, 3)))
    return DatasetInfo("photos", channels=3, resolution=images.shape[-1], num_classes=len(PHOTOS) * BANDS,
                       normalization=Normalization(mean, std))


@functools.lru_cache(maxsize=8)
def _crops(resolution: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of both photos, (N, 3, resolution, resolution) in [0, 1], and its label."""
    stride = window // 2
    images, labels = [], []
    for index, photo in enumerate(_photos()):
        height, width = photo.shape[-2:]
        for top in range(0, height - window + 1, stride):
            for left in range(0, width - window + 1, stride):
                images.append(photo[:, top:top + window, left:left + window])
                labels.append(index * BANDS + min(BANDS - 1, (left + window // 2) * BANDS // width))
    stacked = torch.stack(images)
    resized = F.interpolate(stacked, size=resolution, mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0, 1), torch.tensor(labels, dtype=torch.int64)


def _photos() -> list[torch.Tensor]:
    """The two photographs as (3, 427, 640) float tensors in [0, 1], decoded with Pillow from the
    files scikit-learn ships (without importing scikit-learn)."""
    from PIL import Image

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the photos dataset ships with scikit-learn, which is not installed: "
                                  "pip install scikit-learn")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "images"
    out = []
    for name in PHOTOS:
        with Image.open(folder / name) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(pixels).permute(2, 0, 1).contiguous())
    return out
