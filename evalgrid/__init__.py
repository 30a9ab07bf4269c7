"""evalgrid: declarative, resumable sweeps of gradient inversion attacks against federated learning."""

from evalgrid._version import __version__


def load(directory, stale: bool = False):
    """The results in ``directory`` as a pandas DataFrame: the cells of its current grid, or with
    ``stale=True`` also an earlier grid's, marked in column ``stale`` (see
    :func:`evalgrid.store.load.load`)."""
    from evalgrid.store.load import load as _load

    return _load(directory, stale=stale)

__all__ = ["__version__", "load"]
