"""evalgrid: declarative, resumable sweeps of gradient inversion attacks against federated learning."""



def load(directory, stale: bool = False):
    """The results in ``directory`` as a pandas DataFrame: the cells of its current grid, or with
    ``stale=True`` also an earlier grid's, marked in column ``stale`` (see
    :func:`evalgrid.store.load.load`)."""
    from evalgrid.store.load import load as _load

    return _load(directory, stale=stale)

def __getattr__(name: str):
    if name == "__version__":  # read from the package's metadata on first use
        from evalgrid._version import evalgrid_version

        return evalgrid_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "load"]
