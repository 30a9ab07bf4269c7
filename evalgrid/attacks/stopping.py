"""Early stopping of a gradient-matching attack: a trial ends once ``window`` consecutive steps
have not improved its loss by a relative ``tolerance``.

The loss is the objective the attack's step minimises, evaluated at the images the step starts
from (each attack's docstring of ``early_stop_window`` names it). A step improves when
best − loss > tolerance·|best|; only an improvement moves ``best``, so slow steady progress,
each step below the tolerance, still counts once it adds up to more than the tolerance.
``window = 0`` (the default of every attack) never stops: the paper presets run in full.

An attack keeps ``best`` and ``since_best`` as plain fields of its state, so that a checkpoint
holds them and a resumed run stops at the same iteration as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evalgrid.catalogue.options import option


@dataclass(frozen=True)
class EarlyStopping:
    """The rule: stop after ``window`` steps without an improvement of more than ``tolerance``
    relative to the best loss (``window`` 0: never)."""

    window: int = 0
    tolerance: float = 1e-3

    @property
    def enabled(self) -> bool:
        return self.window > 0

    def improves(self, best: float, loss: float) -> bool:
        if math.isinf(best):  # nothing seen yet: any finite loss is the first best
            return loss < best
        return best - loss > self.tolerance * abs(best)

    def update(self, best: float, since_best: int, loss: float) -> tuple[float, int, bool]:
        """(best, steps since the best, stop) after a step whose loss was ``loss``."""
        if self.improves(best, loss):
            best, since_best = loss, 0
        else:
            since_best += 1
        return best, since_best, self.stopped(since_best)

    def stopped(self, since_best: int) -> bool:
        return self.enabled and since_best >= self.window


def window_option(loss: str) -> Any:
    """The ``early_stop_window`` option of an attack whose step minimises ``loss``."""
    return option(0, minimum=0, in_id_at_default=False,
                  doc=f"end a trial after this many steps in a row without the {loss} improving by more "
                      f"than early_stop_tolerance; 0: never (run every iteration)")


def tolerance_option() -> Any:
    """The ``early_stop_tolerance`` option."""
    return option(1e-3, minimum=0, in_id_at_default=False,
                  doc="a step improves when it lowers the best loss by more than this fraction of it "
                      "(early_stop_window)")
