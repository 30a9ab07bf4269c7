"""Combinations of factor values that cannot be simulated, rejected when the grid is read
(before anything runs) with the fix: an ``[[exclude]]`` rule or a changed option."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalgrid.cell import CellConfig


@dataclass(frozen=True)
class Rule:
    applies: Callable[[CellConfig], bool]  # true when the cell is impossible
    message: Callable[[CellConfig], str]


def _shares_bn(cell: CellConfig) -> bool:
    return bool(getattr(cell.local_training.options, "share_bn_statistics", False))


RULES: tuple[Rule, ...] = (
    Rule(lambda cell: cell.attack.name == "gradinversion" and not _shares_bn(cell),
         lambda cell: f"attack 'gradinversion' needs the BatchNorm statistics of the victim's batch, but local "
                      f"training {cell.local_training} does not share them: set "
                      f"[local_trainings.{cell.local_training.name}] share_bn_statistics = true, or exclude "
                      f"gradinversion from those cells with an [[exclude]] rule."),
    Rule(lambda cell: "defended_accuracy" in cell.metrics and cell.stage.name == "initial",
         lambda cell: "metric 'defended_accuracy' trains the model with the defense applied by every client up "
                      "to the stage's round, so it needs a 'fedavg' stage (stage = 'initial' has no training): "
                      "set stage = [{ name = \"fedavg\", round = ... }] or drop the metric."),
)


def incompatibility(cell: CellConfig) -> str | None:
    """Why the cell cannot run, or None."""
    for rule in RULES:
        if rule.applies(cell):
            return f"cell {cell.cell_id} ({_describe(cell)}) cannot run: {rule.message(cell)}"
    return None


def _describe(cell: CellConfig) -> str:
    labels = cell.factor_labels()
    return ", ".join(f"{name}={labels[name]}" for name in ("model", "attack", "local_training", "defense", "stage"))
