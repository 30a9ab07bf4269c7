"""Grid files: read (with ``extends``), validate and expand into cells.

Validation reads the catalogue (torch-free): ``Grid``, ``shown`` and the validator are
imported on first use, so that ``evalgrid.grid.order`` reads a grid without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalgrid.grid.validate import Grid, shown


# Cells a grid may expand to unless `--max-cells` says more: 100,000 plan in 3 s; a million take
# about 30 s and some GB; a typo (seeds = 0..10**6 crossed with the rest) must not take the machine.
MAX_CELLS = 1_000_000


def load_grid(path: str | Path, max_cells: int | None = MAX_CELLS) -> Grid:
    """Read, merge, validate and expand a grid file. Raises GridError (exit 2) on any mistake,
    including factor lists that give more than ``max_cells`` cells (None: no limit, for a
    DIR/grid.toml that was checked when it ran)."""
    from evalgrid.grid.toml_io import read_grid_toml
    from evalgrid.grid.validate import validate_grid

    return validate_grid(read_grid_toml(Path(path)), max_cells)


def __getattr__(name: str) -> Any:
    if name in ("Grid", "shown"):
        from evalgrid.grid import validate

        return getattr(validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Grid", "load_grid", "shown"]
