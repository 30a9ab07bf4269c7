"""scikit-learn's bundled 8×8 handwritten digits, upsampled: ships with the package, no download."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from evalgrid.data.base import DatasetInfo
from evalgrid.options import option
from evalgrid.threat_model import Normalization

TRAIN_FRACTION = 0.8  # the first 80% of the 1,797 images form the train split, the rest test


@dataclass(frozen=True)
class DigitsOptions:
    resolution: int = option(32, minimum=16, maximum=512, doc="side of the upsampled image")
    split: Literal["train", "test"] = "train"


class Digits:
    """Grayscale digits 0-9 resized bilinearly from 8×8 to ``resolution``."""

    def __init__(self, options: DigitsOptions):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
        labels = torch.from_numpy(bunch.target.astype(np.int64))
        cut = int(len(labels) * TRAIN_FRACTION)
        part = slice(0, cut) if options.split == "train" else slice(cut, None)
        images = F.interpolate(pixels[part], size=options.resolution, mode="bilinear", align_corners=False)
        self._images = images.clamp(0, 1).contiguous()
        self._labels = labels[part].contiguous()
        everything = F.interpolate(pixels, size=options.resolution, mode="bilinear", align_corners=False)
        stats = Normalization(mean=(float(everything.mean()),), std=(float(everything.std()),))
        self.info = DatasetInfo("digits", channels=1, resolution=options.resolution,
                                num_classes=10, normalization=stats)

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self._images[index].clone(), self._labels[index].clone()


def build(options: DigitsOptions, data_root=None) -> Digits:
    return Digits(options)
