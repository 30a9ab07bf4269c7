"""Dataset registry. ``build(options, data_root)`` returns an :class:`ImageDataset`;
``preflight(options, data_root)`` raises a UserError before dispatch when files are missing."""

from __future__ import annotations

from evalgrid.data import cifar, digits
from evalgrid.data.base import DATA_ROOT_ENV, DatasetInfo, ImageDataset, resolve_data_root
from evalgrid.registry import Component, Registry

DATASETS: Registry[Component] = Registry("dataset")
DATASETS.register("digits", Component(
    "digits", digits.DigitsOptions, digits.build,
    "scikit-learn's 8x8 handwritten digits, upsampled; ships with the package"))
DATASETS.register("cifar10", Component(
    "cifar10", cifar.CifarOptions, cifar.CIFAR10.build,
    "CIFAR-10, 32x32 colour, 10 classes; a local copy under the data root (cifar-10-batches-py/)",
    preflight=cifar.CIFAR10.preflight))
DATASETS.register("cifar100", Component(
    "cifar100", cifar.CifarOptions, cifar.CIFAR100.build,
    "CIFAR-100, 32x32 colour, 100 fine classes; a local copy under the data root (cifar-100-python/)",
    preflight=cifar.CIFAR100.preflight))

__all__ = ["DATASETS", "DATA_ROOT_ENV", "DatasetInfo", "ImageDataset", "resolve_data_root"]
