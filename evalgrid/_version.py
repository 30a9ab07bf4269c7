"""evalgrid's version, read from the installed package's metadata when first asked for
(importing importlib.metadata costs ~40 ms, which `evalgrid --help` need not pay)."""

from __future__ import annotations

import functools


@functools.cache
def evalgrid_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evalgrid")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"
