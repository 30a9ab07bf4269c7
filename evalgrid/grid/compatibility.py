"""Combinations of factor values that cannot be simulated, rejected when the grid is read
(before anything runs) with the fix: an ``[[exclude]]`` rule or a changed option."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalgrid.grid.cell import CellConfig


@dataclass(frozen=True)
class Rule:
    applies: Callable[[CellConfig], bool]  # true when the cell is impossible
    message: Callable[[CellConfig], str]


def _shares_bn(cell: CellConfig) -> bool:
    return bool(getattr(cell.local_training.options, "share_bn_statistics", False))


def _needs_bn_statistics(cell: CellConfig) -> bool:
    from evalgrid.catalogue import ATTACKS

    return ATTACKS[cell.attack.name].needs_shared_bn_statistics and not _shares_bn(cell)


def _trains_defended_without_stage(cell: CellConfig) -> str | None:
    """The first listed metric that trains the federation with the defense, when the stage has no training."""
    from evalgrid.catalogue import METRICS, STAGES

    if STAGES[cell.stage.name].trains:
        return None
    return next((name for name in cell.metrics if METRICS[name].needs_defended_training), None)


def _training_stages() -> list[str]:
    from evalgrid.catalogue import STAGES

    return [name for name in STAGES if STAGES[name].trains]


RULES: tuple[Rule, ...] = (
    Rule(_needs_bn_statistics,
         lambda cell: f"attack {cell.attack.name!r} needs the BatchNorm statistics of the victim's batch, but local "
                      f"training {cell.local_training} does not share them: set "
                      f"[local_trainings.{cell.local_training.name}] share_bn_statistics = true, or exclude "
                      f"{cell.attack.name} from those cells with an [[exclude]] rule."),
    Rule(lambda cell: _trains_defended_without_stage(cell) is not None,
         lambda cell: f"metric {_trains_defended_without_stage(cell)!r} trains the model with the defense applied "
                      f"by every client up to the stage's round, so it needs a stage with training (stage = "
                      f"{cell.stage.name!r} has none): choose one of {', '.join(map(repr, _training_stages()))} "
                      f"or drop the metric."),
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
