"""The options of every built-in dataset, apart from their readers so that the catalogue can
list and validate them without importing torch or numpy.

A cell's id hashes these fields (names, defaults and values), so they change only with the
datasets they describe. Each reader imports its class from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalgrid.catalogue.options import option


# digits (evalgrid.data.digits) --------------------------------------------------------------

@dataclass(frozen=True)
class DigitsOptions:
    resolution: int = option(32, minimum=16, maximum=512, doc="side of the upsampled image")
    split: Literal["train", "test"] = "train"


# photos (evalgrid.data.photos) --------------------------------------------------------------

@dataclass(frozen=True)
class PhotoOptions:
    resolution: int = option(32, minimum=16, maximum=128, doc="side of the resized crops (CIFAR: 32)")
    window: int = option(96, minimum=32, maximum=416, doc="side of the square window cut from the 427x640 photo")
    split: Literal["train", "test"] = "train"


# mnist, svhn, cifar10, cifar100: a fixed resolution, only the split to choose ----------------

@dataclass(frozen=True)
class MnistOptions:
    split: Literal["train", "test"] = "train"


@dataclass(frozen=True)
class SvhnOptions:
    split: Literal["train", "test"] = "train"


@dataclass(frozen=True)
class CifarOptions:
    split: Literal["train", "test"] = "train"


# imagefolder, imagenet (evalgrid.data.folder) ------------------------------------------------

@dataclass(frozen=True)
class ImageFolderOptions:
    path: str = option("", doc="the folder of class subfolders: relative to the data root, or absolute")
    resolution: int = option(32, minimum=8, maximum=1024, doc="images are resized and centre-cropped to this side")
    test_fraction: float = option(0.2, minimum=0.0, maximum=1.0, doc="share of each class held out as the test split")
    split: Literal["train", "test"] = "train"


@dataclass(frozen=True)
class ImageNetOptions:
    resolution: int = option(224, minimum=8, maximum=1024,
                             doc="centre-crop side; the short side is first resized to resolution·256/224")
    test_fraction: float = option(0.2, minimum=0.0, maximum=1.0,
                                  doc="share of each class of the validation set held out as the test split")
    split: Literal["train", "test"] = "train"
