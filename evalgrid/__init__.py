"""evalgrid: declarative, resumable sweeps of gradient inversion attacks against federated learning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evalgrid")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"


def load(directory, stale: bool = False):
    """The results in ``directory`` as a pandas DataFrame: the cells of its current grid, or with
    ``stale=True`` also an earlier grid's, marked in column ``stale`` (see
    :func:`evalgrid.store.load.load`)."""
    from evalgrid.store.load import load as _load

    return _load(directory, stale=stale)
