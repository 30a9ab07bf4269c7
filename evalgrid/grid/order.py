"""Each factor's value labels in the order a grid file lists them, for ordering results.

Read from the factor lists as written (``extends`` merged), labelled as the parsed values are,
without validating or expanding the grid: no component registry, no torch, and no time spent
on the cells of a grid with a million of them. The grid was validated when it ran.
"""

from __future__ import annotations

from pathlib import Path

from evalgrid.grid.cell import FACTOR_NAMES
from evalgrid.errors import UserError
from evalgrid.grid.factors import FACTORS, REQUIRED
from evalgrid.grid.toml_io import read_grid_toml
from evalgrid.catalogue.options import InvalidOption


def factor_order(path: str | Path) -> dict[str, list[str]]:
    """Factor → the labels of its values in grid order (its default alone when not varied);
    empty when the file cannot be read or its factors are not lists of values."""
    try:
        declared = read_grid_toml(Path(path)).data.get("factors")
        if not isinstance(declared, dict):
            return {}
        order = {}
        for name in FACTOR_NAMES:
            factor = FACTORS[name]
            raw_list = declared.get(name, [factor.default])
            if raw_list == [REQUIRED] or not isinstance(raw_list, list):
                return {}
            order[name] = [str(factor.label(raw)) for raw in raw_list]
        return order
    except (UserError, InvalidOption):
        return {}
