"""How much of its paper's budget a cell's attack ran: the share of the preset's planned
iterations per trial. A cell far below its preset (the quickstart's IG runs 300 of 24,000 Adam
steps) understates the attack, and the readers of its results (the run's summary, the report)
say so.

Importing this module imports neither torch nor the catalogue: :func:`budget_note` is all a
reader needs; :func:`budget_share` loads the attack's entry when it is called."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

UNDER_BUDGET_SHARE = 0.5  # below this share of its preset a cell is "under budget" (under_budget_line: "half")


def budget_share(attack_name: str, options: Any) -> float:
    """The cell's planned attack iterations per trial over those of the attack's preset (its
    options dataclass at its defaults). Each attack counts its own unit (GGL: gradient
    evaluations; GIA-L: latent steps of every restart plus generator steps; IG: steps of every
    restart), as its ``planned_iterations()`` gives them, so the share compares like with like."""
    from evalgrid.catalogue import ATTACKS

    build = ATTACKS[attack_name].build
    return build(options).planned_iterations() / build(preset_options(options)).planned_iterations()


def preset_options(options: Any) -> Any:
    """``options`` with every option that has a preset value set back to it (an option without
    one, such as a path the grid must give, keeps the cell's value)."""
    defaults = {}
    for field in dataclasses.fields(options):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return dataclasses.replace(options, **defaults)


def is_under_budget(share: float | None) -> bool:
    """The share is known (not null or NaN) and below :data:`UNDER_BUDGET_SHARE`."""
    return share is not None and not math.isnan(share) and share < UNDER_BUDGET_SHARE


def share_percent(share: float) -> str:
    """The share as a percentage with two significant digits: ``0.0125`` -> ``"1.2 %"``."""
    return f"{100 * share:.2g} %"


def budget_note(share: float | None) -> str:
    """What a reader prints beside an under-budget cell, e.g. "under budget: 1.2 % of the
    preset's iterations"; "" for a cell at (or near, or over) its preset's budget, or of unknown
    share (a failed cell, or a row from before the column existed)."""
    if not is_under_budget(share):
        return ""
    return f"under budget: {share_percent(share)} of the preset's iterations"


def under_budget_line(cells: int) -> str:
    """What a summary says under its table when ``cells`` of its cells ran under budget."""
    counted = "1 cell" if cells == 1 else f"{cells} cells"
    return (f"{counted} ran under budget (fewer than half the preset's iterations: a poor reconstruction "
            f"there may understate the attack); see budget_share.")
