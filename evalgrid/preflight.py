"""Checks that run before anything is dispatched or written: local data and weights exist."""

from __future__ import annotations

from evalgrid.grid import Grid


def check_ready(grid: Grid) -> None:
    """Raise a UserError naming what is missing and how to provide it."""
    from evalgrid.data import DATASETS
    from evalgrid.metrics import required_weights
    from evalgrid.weights import require_weights

    for choice in {cell.dataset for cell in grid.cells}:
        entry = DATASETS[choice.name]
        if entry.preflight is not None:
            entry.preflight(choice.options, grid.data_root)
    require_weights(required_weights(grid.metrics))
