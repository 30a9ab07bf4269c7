"""Grid files: read (with ``extends``), validate and expand into cells."""

from __future__ import annotations

from pathlib import Path

from evalgrid.grid.toml_io import read_grid_toml
from evalgrid.grid.validate import Grid, shown, validate_grid


def load_grid(path: str | Path) -> Grid:
    """Read, merge, validate and expand a grid file. Raises GridError (exit 2) on any mistake."""
    return validate_grid(read_grid_toml(Path(path)))


__all__ = ["Grid", "load_grid", "shown"]
