"""Expand factor values into cells: the product over axes (a zip group is one axis), minus exclusions."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from evalgrid.cell import CellConfig
from evalgrid.errors import UserError

ExcludeRule = dict[str, list[Callable[[Any], bool]]]  # factor → alternatives; a rule matches when every factor does


def expand_cells(values: dict[str, tuple[Any, ...]], zip_groups: Sequence[tuple[str, ...]],
                 excludes: Sequence[ExcludeRule], metrics: tuple[str, ...], metric_options: Any,
                 varied: Sequence[str]) -> tuple[CellConfig, ...]:
    axes = _axes(values, zip_groups, varied)
    cells: dict[str, CellConfig] = {}
    for combination in itertools.product(*(rows for _, rows in axes)):
        assignment: dict[str, Any] = {}
        for (names, _), row in zip(axes, combination):
            assignment.update(zip(names, row))
        if any(_matches(rule, assignment) for rule in excludes):
            continue
        cell = CellConfig(**assignment, metrics=metrics, metric_options=metric_options)
        clash = cells.get(cell.cell_id)
        if clash is not None and clash != cell:  # a 48-bit hash collision: astronomically rare, never silent
            raise UserError(f"cell id {cell.cell_id} is shared by two different configurations; "
                            f"please report this with the grid file.")
        cells[cell.cell_id] = cell
    return tuple(cells.values())


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
