"""Dataset registry. ``build(options, data_root)`` returns an :class:`ImageDataset`;
``preflight(options, data_root)`` raises a UserError before dispatch when files are missing."""

from __future__ import annotations

from evalgrid.data import digits
from evalgrid.data.base import DATA_ROOT_ENV, DatasetInfo, ImageDataset, resolve_data_root
from evalgrid.registry import Component, Registry

DATASETS: Registry[Component] = Registry("dataset")
DATASETS.register("digits", Component(
    "digits", digits.DigitsOptions, digits.build,
    "scikit-learn's 8x8 handwritten digits, upsampled; ships with the package"))

__all__ = ["DATASETS", "DATA_ROOT_ENV", "DatasetInfo", "ImageDataset", "resolve_data_root"]
