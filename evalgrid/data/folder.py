"""Trees of class folders, ``FOLDER/<class>/<image files>`` (torchvision's ImageFolder layout:
HAM10000, LC25000 lung and colon histopathology, ...), and ImageNet's validation set, a preset
of the same reader.

The files are listed once when the dataset is built and decoded lazily, per batch: ImageNet's
validation set alone has 50,000 files. Each image is converted to RGB, resized (bilinear,
antialiased, as torchvision's ``Resize``) so its short side is ``resolution × resize_ratio``
and centre-cropped to ``resolution`` × ``resolution``.

Classes are the sorted names of the non-hidden subfolders; a class's images are the files with
an image extension anywhere below its folder (as ImageFolder), sorted by their path inside it.
Index order is class by class, files in that order. Train and test are carved out of each class
deterministically: the last ``round(count × test_fraction)`` files of a class form its test
split, the rest its train split, so the two never overlap.

Normalisation uses the ImageNet training set's statistics, as torchvision's pretrained models
do; for other image folders they are a conventional default, not the folder's own statistics.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from evalgrid.data.base import (IMAGENET_NORMALIZATION, ROOT_SOURCE, DatasetInfo, require_data_root)
from evalgrid.data.options import ImageFolderOptions, ImageNetOptions
from evalgrid.errors import MissingInput, UserError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
IMAGENET_FOLDER = Path("imagenet") / "val"
IMAGENET_CLASSES = 1000
IMAGENET_RESIZE_RATIO = 256 / 224  # the usual "resize 256, centre crop 224" evaluation transform
SHOWN_NAMES = 5  # how many offending class folders an error lists


@dataclass(frozen=True)
class Located:
    """Where a tree lives, and how to explain where that came from."""

    folder: Path
    origin: str  # a sentence: how the folder was derived from the options and the data root


@dataclass(frozen=True, eq=False)  # one instance per registry entry; hashed by identity
class FolderDataset:
    """A registry entry reading a tree of class folders."""

    name: str
    locate: Callable[[Any, str | os.PathLike | None], Located]
    layout: str  # what the folder must hold, for error messages
    how_to_get: str
    resize_ratio: float = 1.0
    expected_classes: int | None = None

    def build(self, options: Any, data_root: str | os.PathLike | None = None) -> LazyImageFolder:
        located = self.locate(options, data_root)
        listing = self._list(located)
        files, labels = self._split(options, located, listing)
        info = DatasetInfo(self.name, channels=3, resolution=options.resolution, num_classes=len(listing),
                           normalization=IMAGENET_NORMALIZATION)
        return LazyImageFolder(self.name, files, torch.tensor(labels, dtype=torch.int64), info, self.resize_ratio)

    def preflight(self, options: Any, data_root: str | os.PathLike | None = None) -> int:
        """The tree exists with enough classes, an image in each, a non-empty split, and the
        first image of each class can be opened (its header only: the rest is read per batch);
        the split's image count."""
        located = self.locate(options, data_root)
        listing = self._list(located)
        files, _ = self._split(options, located, listing)
        for class_files in listing.values():
            _open_header(self.name, class_files[0])
        return len(files)

    def describe(self, options: Any, data_root: str | os.PathLike | None = None) -> DatasetInfo:
        """The public facts; lists the class folders only (not at all for a fixed class count)."""
        num_classes = self.expected_classes or len(self._class_names(self.locate(options, data_root)))
        return DatasetInfo(self.name, channels=3, resolution=options.resolution, num_classes=num_classes,
                           normalization=IMAGENET_NORMALIZATION)

    def _list(self, located: Located) -> dict[str, list[Path]]:
        """Class name -> its image files, sorted; checks the tree's shape."""
        classes = self._class_names(located)
        if self.expected_classes is not None and len(classes) != self.expected_classes:
            raise UserError(f"dataset {self.name!r}: {located.folder} has {len(classes)} class folders, expected "
                            f"{self.expected_classes}. {self.layout} {self.how_to_get}".rstrip())
        if self.expected_classes is None and len(classes) < 2:
            raise UserError(f"dataset {self.name!r}: {located.folder} has {len(classes)} class folder(s) "
                            f"({', '.join(classes) or 'none'}), a classification task needs at least 2. {self.layout}")
        listing = {name: _image_files(located.folder / name) for name in classes}
        empty = [name for name, files in listing.items() if not files]
        if empty:
            shown = ", ".join(str(located.folder / name) for name in empty[:SHOWN_NAMES])
            more = f" and {len(empty) - SHOWN_NAMES} more" if len(empty) > SHOWN_NAMES else ""
            raise UserError(f"dataset {self.name!r}: class folder(s) without images: {shown}{more}. Every class "
                            f"needs at least one file ending in {', '.join(sorted(IMAGE_EXTENSIONS))}.")
        return listing

    def _class_names(self, located: Located) -> list[str]:
        if not located.folder.is_dir():
            raise MissingInput(f"dataset {self.name!r}: missing folder {located.folder}. {located.origin} "
                               f"{self.layout} {self.how_to_get}".rstrip(), located.folder)
        return sorted(entry.name for entry in os.scandir(located.folder)
                      if entry.is_dir() and not entry.name.startswith("."))

    def _split(self, options: Any, located: Located, listing: dict[str, list[Path]]) -> tuple[list[Path], list[int]]:
        """The split's files in index order and their labels."""
        files: list[Path] = []
        labels: list[int] = []
        for label, class_files in enumerate(listing.values()):
            chosen = class_files[split_slice(len(class_files), options.test_fraction, options.split)]
            files += chosen
            labels += [label] * len(chosen)
        if not files:
            raise UserError(f"dataset {self.name!r}: the {options.split} split of {located.folder} is empty: with "
                            f"test_fraction = {options.test_fraction} no class keeps an image for it. Choose a "
                            f"test_fraction further from {0 if options.split == 'test' else 1}.")
        return files, labels


def split_slice(count: int, test_fraction: float, split: str) -> slice:
    """The files of one class (``count`` of them, sorted) that belong to ``split``."""
    test_count = math.floor(count * test_fraction + 0.5)  # round half up, unlike Python's round()
    return slice(count - test_count, count) if split == "test" else slice(0, count - test_count)


class LazyImageFolder:
    """Image files listed once and decoded per batch."""

    def __init__(self, name: str, files: list[Path], labels: torch.Tensor, info: DatasetInfo, resize_ratio: float):
        self.name, self.files, self._labels, self.info = name, tuple(files), labels, info
        self.resize_ratio = resize_ratio

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        side = self.info.resolution
        short_side = round(side * self.resize_ratio)
        images = [load_image(self.name, self.files[i], short_side, side) for i in indices]
        index = torch.as_tensor(indices, dtype=torch.long)
        stacked = torch.stack(images) if images else torch.empty(0, 3, side, side)
        return stacked, self._labels[index].clone()

    def resized(self, side: int) -> LazyImageFolder:
        """The same files decoded at ``side`` (see :func:`evalgrid.data.base.at_resolution`)."""
        return LazyImageFolder(self.name, list(self.files), self._labels,
                               dataclasses.replace(self.info, resolution=side), self.resize_ratio)


def load_image(dataset: str, path: Path, short_side: int, side: int) -> torch.Tensor:
    """(3, side, side) float in [0, 1]: RGB, short side resized to ``short_side`` (>= side), centre crop."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise _unreadable(dataset, path, error) from error
    width, height = image.size
    if width <= height:  # the long side is truncated, as torchvision's Resize does
        size = (short_side, int(short_side * height / width))
    else:
        size = (int(short_side * width / height), short_side)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR)  # Pillow antialiases when shrinking
    left, top = round((size[0] - side) / 2), round((size[1] - side) / 2)
    image = image.crop((left, top, left + side, top + side))
    pixels = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255)


def _open_header(dataset: str, path: Path) -> None:
    try:
        with Image.open(path):
            pass
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise _unreadable(dataset, path, error) from error


def _unreadable(dataset: str, path: Path, error: Exception) -> UserError:
    return UserError(f"dataset {dataset!r}: {path} cannot be read as an image ({type(error).__name__}: {error}). "
                     f"Replace or remove it (a Git LFS or git-annex pointer instead of the file looks like this too).")


def _image_files(class_folder: Path) -> list[Path]:
    """Image files anywhere below ``class_folder`` (hidden files and folders skipped), sorted
    by their path inside it. Symlinked folders are followed, except into a folder already
    walked (by its real path) or one that contains the class folder, so a link back up the
    tree is neither a loop nor a way into the other classes."""
    found = []
    top = os.path.realpath(class_folder)
    walked = {top}
    for folder, subfolders, files in os.walk(class_folder, followlinks=True):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")
                         and _first_visit(os.path.realpath(os.path.join(folder, name)), top, walked)]
        found += [Path(folder, name) for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda path: path.relative_to(class_folder).as_posix())


def _first_visit(real_path: str, top: str, walked: set[str]) -> bool:
    if real_path in walked or top.startswith(real_path.rstrip(os.sep) + os.sep):
        return False
    walked.add(real_path)
    return True


# ---- presets ---------------------------------------------------------------------------

def _locate_imagefolder(options: ImageFolderOptions, data_root: str | os.PathLike | None) -> Located:
    if not options.path:
        raise UserError(
            "dataset 'imagefolder' needs the option `path`: the folder that holds one subfolder per class, "
            "relative to the data root or absolute, e.g. dataset = [{ name = \"imagefolder\", path = \"ham10000\" }].")
    path = Path(options.path).expanduser()
    if path.is_absolute():
        return Located(path, f"`path` = {options.path!r} is absolute.")
    root = require_data_root("imagefolder", data_root, f"{options.path}/",
                             f"arrange the images as {options.path}/<class>/<image files> under that folder, "
                             f"or give `path` as an absolute path.")
    return Located(root / path, f"`path` = {options.path!r} is relative to the data root {root}, "
                                f"which comes from {ROOT_SOURCE}.")


IMAGENET_HOW_TO_GET = (
    "ImageNet is not downloadable without an account: get ILSVRC2012_img_val.tar and "
    "ILSVRC2012_devkit_t12.tar.gz from https://image-net.org, put them in ROOT/imagenet and run "
    "torchvision.datasets.ImageNet('ROOT/imagenet', split='val') once, which sorts the validation "
    f"images into ROOT/{IMAGENET_FOLDER.as_posix()}/<wnid>/*.JPEG; copy that folder here.")


def _locate_imagenet(options: ImageNetOptions, data_root: str | os.PathLike | None) -> Located:
    root = require_data_root("imagenet", data_root, f"{IMAGENET_FOLDER.as_posix()}/", IMAGENET_HOW_TO_GET)
    return Located(root / IMAGENET_FOLDER, f"The data root {root} comes from {ROOT_SOURCE}.")


IMAGEFOLDER = FolderDataset(
    name="imagefolder", locate=_locate_imagefolder,
    layout="The folder must hold one subfolder per class, each with that class's images.",
    how_to_get="")

# ImageNet's validation set, the only split the SoK's ImageNet experiments need: the train and
# test splits are both carved out of it (test_fraction per class, as for any image folder).
IMAGENET = FolderDataset(
    name="imagenet", locate=_locate_imagenet,
    layout=f"It must hold one folder per ImageNet class (wnid, e.g. n01440764), {IMAGENET_CLASSES} in all.",
    how_to_get=IMAGENET_HOW_TO_GET, resize_ratio=IMAGENET_RESIZE_RATIO, expected_classes=IMAGENET_CLASSES)
