"""Grid files: read (with ``extends``), validate and expand into cells.

Validation needs the component registries (and so torch): ``Grid``, ``shown`` and the
validator are imported on first use, so that ``evalgrid.grid.order`` reads a grid without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalgrid.grid.validate import Grid, shown


def load_grid(path: str | Path) -> Grid:
    """Read, merge, validate and expand a grid file. Raises GridError (exit 2) on any mistake."""
    from evalgrid.grid.toml_io import read_grid_toml
    from evalgrid.grid.validate import validate_grid

    return validate_grid(read_grid_toml(Path(path)))


def __getattr__(name: str) -> Any:
    if name in ("Grid", "shown"):
        from evalgrid.grid import validate

        return getattr(validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Grid", "load_grid", "shown"]
