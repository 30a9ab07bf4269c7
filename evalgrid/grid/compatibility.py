"""Combinations of factor values that cannot be simulated, rejected when the grid is read
(before anything runs) with the fix: an ``[[exclude]]`` rule or a changed option. Each rule
reads facts of the components' catalogue entries, never their names."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from evalgrid.catalogue import ATTACKS, METRICS, PRIORS, STAGES
from evalgrid.grid.cell import CellConfig


@dataclass(frozen=True)
class Rule:
    reads: tuple[str, ...]  # the factors the rule depends on: checked once per combination of their values
    applies: Callable[[CellConfig], bool]  # true when the cell is impossible
    message: Callable[[CellConfig], str]


def _needs_bn_statistics(cell: CellConfig) -> bool:
    shares = bool(getattr(cell.local_training.options, "share_bn_statistics", False))
    return ATTACKS[cell.attack.name].needs_shared_bn_statistics and not shares


def _trains_defended_without_stage(cell: CellConfig) -> str | None:
    """The first listed metric that trains the federation with the defense, when the stage has no training."""
    if STAGES[cell.stage.name].trains:
        return None
    return next((name for name in cell.metrics if METRICS[name].needs_defended_training), None)


def _prior_problem(cell: CellConfig) -> str | None:
    """Why the cell's prior does not fit its attack: missing, of another kind, or not taken."""
    wanted = ATTACKS[cell.attack.name].prior
    if wanted is None and cell.prior is not None:
        return (f"attack {cell.attack.name!r} takes no prior, but the cell gives it prior {str(cell.prior)!r}: "
                f"exclude those cells with an [[exclude]] rule (attack = {cell.attack.name!r}, prior = "
                f"{cell.prior.name!r}), or give them prior = \"none\".")
    if wanted is None:
        return None
    fitting = [name for name in PRIORS if PRIORS[name].provides == wanted]
    if cell.prior is None:
        return (f"attack {cell.attack.name!r} optimises through a {wanted} prior, but the cell has none: "
                f"add one to the prior factor ({', '.join(map(repr, fitting))}), or exclude the cells with "
                f"prior = \"none\" for this attack.")
    if PRIORS[cell.prior.name].provides != wanted:
        return (f"attack {cell.attack.name!r} optimises through a {wanted} prior, but prior {cell.prior.name!r} "
                f"is a {PRIORS[cell.prior.name].provides}: use one of {', '.join(map(repr, fitting))}, or "
                f"exclude the pair with an [[exclude]] rule.")
    return None


def _prior_sees_victims(cell: CellConfig) -> bool:
    """The prior would train on the victims' dataset by name (its train split, where the victims may be)."""
    return cell.prior is not None and getattr(cell.prior.options, "data", None) == cell.dataset.name


def _training_stages() -> list[str]:
    return [name for name in STAGES if STAGES[name].trains]


RULES: tuple[Rule, ...] = (
    Rule(("attack", "prior"), lambda cell: _prior_problem(cell) is not None,
         lambda cell: _prior_problem(cell) or ""),
    Rule(("prior", "dataset"), _prior_sees_victims,
         lambda cell: f"prior {str(cell.prior)!r} names the victims' dataset {cell.dataset.name!r} as its data, "
                      f"so it could train on the victims' own images: write data = \"victim\" (the split the "
                      f"victims are not drawn from, disjoint by construction) or another dataset."),
    Rule(("attack", "local_training"), _needs_bn_statistics,
         lambda cell: f"attack {cell.attack.name!r} needs the BatchNorm statistics of the victim's batch, but local "
                      f"training {cell.local_training} does not share them: set "
                      f"[local_trainings.{cell.local_training.name}] share_bn_statistics = true, or exclude "
                      f"{cell.attack.name} from those cells with an [[exclude]] rule."),
    Rule(("stage",), lambda cell: _trains_defended_without_stage(cell) is not None,
         lambda cell: f"metric {_trains_defended_without_stage(cell)!r} trains the model with the defense applied "
                      f"by every client up to the stage's round, so it needs a stage with training (stage = "
                      f"{cell.stage.name!r} has none): choose one of {', '.join(map(repr, _training_stages()))} "
                      f"or drop the metric."),
)


def first_incompatibility(cells: Sequence[CellConfig], values: Mapping[str, tuple[Any, ...]]) -> str | None:
    """Why the first cell that cannot run cannot, or None. Each rule is evaluated once per
    combination of the factor values it reads (``values``: every factor's values), on the first
    cell with its fields set to them; only for a combination that fails are the cells searched
    for the first that has it (an [[exclude]] rule may have removed them all)."""
    if not cells:
        return None
    for rule in RULES:
        for combination in itertools.product(*(values[name] for name in rule.reads)):
            if not rule.applies(dataclasses.replace(cells[0], **dict(zip(rule.reads, combination)))):
                continue
            read = attrgetter(*rule.reads)
            wanted = combination if len(rule.reads) > 1 else combination[0]
            found = next((cell for cell in cells if read(cell) == wanted), None)
            if found is not None:
                return _problem(rule, found)
    return None


def _problem(rule: Rule, cell: CellConfig) -> str:
    return f"cell {cell.cell_id} ({_describe(cell)}) cannot run: {rule.message(cell)}"


def _describe(cell: CellConfig) -> str:
    labels = cell.factor_labels()
    return ", ".join(f"{name}={labels[name]}" for name in ("model", "attack", "prior", "local_training", "defense",
                                                          "stage"))
