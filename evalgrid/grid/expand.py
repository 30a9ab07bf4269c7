"""Expand factor values into cells: the product over axes (a zip group is one axis), minus exclusions.

Each value is serialised once for all the cells that hold it (``canonical_field``): a cell's
canonical JSON, and so its id, is then a join of prepared fragments, not a walk of its config.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from evalgrid.grid.cell import CANONICAL_KEYS, SCHEMA_FIELD, CellConfig, canonical_field, config_id
from evalgrid.errors import UserError

ExcludeRule = dict[str, list[Callable[[Any], bool]]]  # factor → alternatives; a rule matches when every factor does


class _Row(NamedTuple):
    """One value of an axis (one tuple of a zip group): the fields it sets and their canonical fragments."""

    values: dict[str, Any]
    fragments: tuple[tuple[int, str], ...]  # (position in CANONICAL_KEYS, '"name":value')


def expand_cells(values: dict[str, tuple[Any, ...]], zip_groups: Sequence[tuple[str, ...]],
                 excludes: Sequence[ExcludeRule], metrics: tuple[str, ...], metric_options: Any,
                 varied: Sequence[str]) -> tuple[CellConfig, ...]:
    position = {key: index for index, key in enumerate(CANONICAL_KEYS)}
    fixed = {"metrics": metrics, "metric_options": metric_options}  # what every cell holds
    fixed_parts = [""] * len(CANONICAL_KEYS)
    fixed_parts[position["schema"]] = SCHEMA_FIELD
    for name, value in fixed.items():
        fixed_parts[position[name]] = canonical_field(name, value, metrics)
    axes = []  # those with more than one value: the others are part of every cell
    for names, rows in _axes(values, zip_groups, varied):
        prepared = [_Row(dict(zip(names, row)), tuple((position[n], canonical_field(n, v, metrics))
                                                       for n, v in zip(names, row))) for row in rows]
        if len(prepared) > 1:
            axes.append(prepared)
            continue
        fixed.update(prepared[0].values)
        for index, fragment in prepared[0].fragments:
            fixed_parts[index] = fragment
    cells: dict[str, CellConfig] = {}
    with collector_paused():
        for combination in itertools.product(*axes):
            assignment = fixed.copy()
            for row in combination:
                assignment.update(row.values)
            if excludes and any(_matches(rule, assignment) for rule in excludes):
                continue
            parts = fixed_parts.copy()
            for row in combination:
                for index, fragment in row.fragments:
                    parts[index] = fragment
            cell = CellConfig.from_fields(assignment, config_id("{" + ",".join(filter(None, parts)) + "}"))
            clash = cells.get(cell.cell_id)
            if clash is not None and clash != cell:  # a 48-bit hash collision: astronomically rare, never silent
                raise UserError(f"cell id {cell.cell_id} is shared by two different configurations; "
                                f"please report this with the grid file.")
            cells[cell.cell_id] = cell
    return tuple(cells.values())


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector: while 100,000s of cells are made or listed it would walk
    all of them, again and again; they hold no reference cycles, so it has nothing to find."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def combinations(values: dict[str, tuple[Any, ...]], zip_groups: Sequence[tuple[str, ...]],
                 varied: Sequence[str]) -> int:
    """How many cells the factor lists give before exclude rules: counted, not expanded."""
    return math.prod(len(rows) for _, rows in _axes(values, zip_groups, varied))


def _axes(values: dict[str, tuple[Any, ...]], zip_groups: Sequence[tuple[str, ...]],
          varied: Sequence[str]) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """Axes in the order factors are listed; factors not varied are single-valued axes at the end."""
    group_of = {name: group for group in zip_groups for name in group}
    order = list(varied) + [name for name in values if name not in varied]
    axes, placed = [], set()
    for name in order:
        names = group_of.get(name, (name,))
        if names in placed:
            continue
        placed.add(names)
        axes.append((names, list(zip(*(values[n] for n in names)))))
    return axes


def _matches(rule: ExcludeRule, assignment: dict[str, Any]) -> bool:
    return all(any(alternative(assignment[name]) for alternative in alternatives)
               for name, alternatives in rule.items())
