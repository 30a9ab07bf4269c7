"""The built-in datasets as catalogue entries: names, summaries and options, with their
readers named by string so that listing them imports no torch (see :mod:`evalgrid.catalogue`).

A reader's ``build(options, data_root)`` returns the split as an
:class:`~evalgrid.data.base.ImageDataset`; ``preflight`` (for the datasets read from files
under the data root) checks those files before dispatch and counts the split's images;
``describe`` gives the :class:`~evalgrid.data.base.DatasetInfo` without loading images. The two
datasets that ship with scikit-learn have no files to check, hence no preflight.
"""

from __future__ import annotations

from evalgrid.catalogue.entries import DatasetEntry
from evalgrid.data.options import (CifarOptions, DigitsOptions, ImageFolderOptions, ImageNetOptions, MnistOptions,
                                   PhotoOptions, SvhnOptions)

ENTRIES = (
    DatasetEntry(
        name="digits", options=DigitsOptions,
        summary="scikit-learn's 8x8 handwritten digits, upsampled; ships with the package",
        build="evalgrid.data.digits:build", describe="evalgrid.data.digits:describe"),
    DatasetEntry(
        name="photos", options=PhotoOptions,
        summary="colour crops of the two photographs scikit-learn ships (china, flower), 10 position classes; "
                "a natural-image stand-in that needs no download",
        build="evalgrid.data.photos:build", describe="evalgrid.data.photos:describe"),
    DatasetEntry(
        name="mnist", options=MnistOptions,
        summary="MNIST, 28x28 grayscale, 10 classes; a local copy under the data root (MNIST/raw/, IDX files, "
                ".gz or not)",
        build="evalgrid.data.mnist:build", preflight="evalgrid.data.mnist:preflight",
        describe="evalgrid.data.mnist:describe"),
    DatasetEntry(
        name="svhn", options=SvhnOptions,
        summary="SVHN cropped digits, 32x32 colour, 10 classes; a local copy under the data root (svhn/*_32x32.mat)",
        build="evalgrid.data.svhn:build", preflight="evalgrid.data.svhn:preflight",
        describe="evalgrid.data.svhn:describe"),
    DatasetEntry(
        name="cifar10", options=CifarOptions,
        summary="CIFAR-10, 32x32 colour, 10 classes; a local copy under the data root (cifar-10-batches-py/)",
        build="evalgrid.data.cifar:CIFAR10.build", preflight="evalgrid.data.cifar:CIFAR10.preflight",
        describe="evalgrid.data.cifar:CIFAR10.describe"),
    DatasetEntry(
        name="cifar100", options=CifarOptions,
        summary="CIFAR-100, 32x32 colour, 100 fine classes; a local copy under the data root (cifar-100-python/)",
        build="evalgrid.data.cifar:CIFAR100.build", preflight="evalgrid.data.cifar:CIFAR100.preflight",
        describe="evalgrid.data.cifar:CIFAR100.describe"),
    DatasetEntry(
        name="imagefolder", options=ImageFolderOptions,
        summary="any PATH/<class>/<images> tree (HAM10000, lung and colon histopathology, ...), resized and "
                "centre-cropped to `resolution`; train/test carved per class",
        build="evalgrid.data.folder:IMAGEFOLDER.build", preflight="evalgrid.data.folder:IMAGEFOLDER.preflight",
        describe="evalgrid.data.folder:IMAGEFOLDER.describe"),
    DatasetEntry(
        name="imagenet", options=ImageNetOptions,
        summary="ImageNet's validation set (imagenet/val/<wnid>/ under the data root), 1000 classes, resize 256 "
                "and centre crop 224 by default; train/test carved out of it per class",
        build="evalgrid.data.folder:IMAGENET.build", preflight="evalgrid.data.folder:IMAGENET.preflight",
        describe="evalgrid.data.folder:IMAGENET.describe"),
)
