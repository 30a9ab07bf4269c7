"""Dataset registry. Each entry's ``build(options, data_root)`` returns an :class:`ImageDataset`;
``preflight(options, data_root)`` raises a UserError before dispatch when files are missing or
malformed, and returns the number of images in the split (plan builds a dataset without one to
count them); ``describe(options, data_root)`` returns the :class:`DatasetInfo` cheaply, without
loading images. Every dataset's options have ``split`` ("train" or "test")."""

from __future__ import annotations

from evalgrid.data import cifar, digits, folder, mnist, photos, svhn
from evalgrid.data.base import (DATA_ROOT_ENV, DatasetInfo, ImageDataset, at_resolution,
                                resolve_data_root)
from evalgrid.registry import Component, Registry

DATASETS: Registry[Component] = Registry("dataset")
DATASETS.register("digits", Component(
    "digits", digits.DigitsOptions, digits.build,
    "scikit-learn's 8x8 handwritten digits, upsampled; ships with the package",
    describe=digits.describe))
DATASETS.register("photos", Component(
    "photos", photos.PhotoOptions, photos.build,
    "colour crops of the two photographs scikit-learn ships (china, flower), 10 position classes; a natural-image "
    "stand-in that needs no download", describe=photos.describe))
DATASETS.register("mnist", Component(
    "mnist", mnist.MnistOptions, mnist.build,
    "MNIST, 28x28 grayscale, 10 classes; a local copy under the data root (MNIST/raw/, IDX files, .gz or not)",
    preflight=mnist.preflight, describe=mnist.describe))
DATASETS.register("svhn", Component(
    "svhn", svhn.SvhnOptions, svhn.build,
    "SVHN cropped digits, 32x32 colour, 10 classes; a local copy under the data root (svhn/*_32x32.mat)",
    preflight=svhn.preflight, describe=svhn.describe))
DATASETS.register("cifar10", Component(
    "cifar10", cifar.CifarOptions, cifar.CIFAR10.build,
    "CIFAR-10, 32x32 colour, 10 classes; a local copy under the data root (cifar-10-batches-py/)",
    preflight=cifar.CIFAR10.preflight, describe=cifar.CIFAR10.describe))
DATASETS.register("cifar100", Component(
    "cifar100", cifar.CifarOptions, cifar.CIFAR100.build,
    "CIFAR-100, 32x32 colour, 100 fine classes; a local copy under the data root (cifar-100-python/)",
    preflight=cifar.CIFAR100.preflight, describe=cifar.CIFAR100.describe))
DATASETS.register("imagefolder", Component(
    "imagefolder", folder.ImageFolderOptions, folder.IMAGEFOLDER.build,
    "any PATH/<class>/<images> tree (HAM10000, lung and colon histopathology, ...), resized and "
    "centre-cropped to `resolution`; train/test carved per class",
    preflight=folder.IMAGEFOLDER.preflight, describe=folder.IMAGEFOLDER.describe))
DATASETS.register("imagenet", Component(
    "imagenet", folder.ImageNetOptions, folder.IMAGENET.build,
    "ImageNet's validation set (imagenet/val/<wnid>/ under the data root), 1000 classes, resize 256 "
    "and centre crop 224 by default; train/test carved out of it per class",
    preflight=folder.IMAGENET.preflight, describe=folder.IMAGENET.describe))

__all__ = ["DATASETS", "DATA_ROOT_ENV", "DatasetInfo", "ImageDataset", "at_resolution", "resolve_data_root"]
