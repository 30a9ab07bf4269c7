"""The datasets: each reader module (``digits``, ``photos``, ``mnist``, ``svhn``, ``cifar``,
``folder``) turns local files into an :class:`~evalgrid.data.base.ImageDataset`, the interface
:mod:`evalgrid.data.base` defines. Their options are in :mod:`evalgrid.data.options` and their
catalogue entries in :mod:`evalgrid.data.entries`; look a dataset up with
``evalgrid.catalogue.DATASETS[name]``.

Importing this package imports no torch: reading a grid and listing the catalogue need only the
options and the data root (:mod:`evalgrid.data.root`).
"""

from __future__ import annotations

from evalgrid.data.root import DATA_ROOT_ENV, resolve_data_root

__all__ = ["DATA_ROOT_ENV", "resolve_data_root"]
