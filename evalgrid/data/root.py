"""Where the datasets' local files live: the data root, from the grid or the environment.

Kept apart from :mod:`evalgrid.data.base` (which needs torch) because reading a grid resolves
its data root, and reading a grid imports no torch."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "EVALGRID_DATA"


def resolve_data_root(configured: str | None) -> Path | None:
    """The data root: the grid's ``[data] root`` if set, else ``$EVALGRID_DATA``, else None."""
    value = configured or os.environ.get(DATA_ROOT_ENV)
    return Path(value).expanduser() if value else None
