"""evalgrid: declarative, resumable sweeps of gradient inversion attacks against federated learning."""



def load(directory, stale: bool = False):
    """The results in ``directory`` as a pandas DataFrame: the cells of its current grid, or with
    ``stale=True`` also an earlier grid's, marked in column ``stale`` (see
    :func:`evalgrid.store.load.load`)."""
    from evalgrid.store.load import load as _load

    return _load(directory, stale=stale)


def load_curves(directory):
    """Every finished cell's convergence record in ``directory`` as one pandas DataFrame (cell_id,
    trial, iteration, loss, psnr; see :func:`evalgrid.store.load.load_curves`)."""
    from evalgrid.store.load import load_curves as _load_curves

    return _load_curves(directory)

def __getattr__(name: str):
    if name == "__version__":  # read from the package's metadata on first use
        from evalgrid._version import evalgrid_version

        return evalgrid_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "load", "load_curves"]
