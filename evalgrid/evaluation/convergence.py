"""A cell's convergence record ("loss curve"): every k optimiser steps of a trial, and at its
last step, the reconstruction the attack would return if it stopped there, as one point
(trial, iteration, the attack's loss, and what the pipeline's probe measures, e.g. PSNR).

The points live in the cell's :class:`~evalgrid.evaluation.checkpoint.AttackProgress`, so a
stopped and resumed cell keeps those taken before the stop and takes none twice. Recording
never changes what the attack computes: the attack's ``result`` reads its state without
changing it, and torch's global generators are put back after each point (a model with
dropout draws from them). The attack never sees the private data: the probe, made by the
pipeline, is the only thing that does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalgrid.fl.threat_model import Reconstruction

Probe = Callable[[Reconstruction], dict[str, float]]  # a reconstruction → measured values (e.g. {"psnr": ...})

# The fewest steps between two points. A point costs about one gradient evaluation more (the
# attack's result and the probe), so recording adds at most about a tenth to even the shortest
# runs (measured without this floor: +16 % wall time over four of the suite's end-to-end test files).
MIN_INTERVAL = 10


def recording_interval(planned_iterations: int, points: int) -> int:
    """k, the steps between two points: about ``points`` points over ``planned_iterations``
    steps, k = max(MIN_INTERVAL, ⌈planned / points⌉); 0 when ``points`` is 0 (no recording).
    A run shorter than k gets its last step's point only."""
    if points <= 0:
        return 0
    return max(MIN_INTERVAL, math.ceil(planned_iterations / points))


@dataclass(frozen=True)
class CurveRecorder:
    """Takes a point every ``every`` steps of a trial (and at its last step) with ``probe``."""

    every: int  # k >= 1
    probe: Probe

    def due(self, steps: int) -> bool:
        """Whether the trial's step count ``steps`` is one of the every-k points."""
        return steps % self.every == 0

    def points(self, results: Reconstruction | Sequence[Reconstruction], first_trial: int,
               steps: int) -> list[dict[str, Any]]:
        """The points of ``results`` (one reconstruction, or one per trial of a stacked chunk
        starting at ``first_trial``) after ``steps`` steps: plain dicts, for the checkpoint."""
        reconstructions = [results] if isinstance(results, Reconstruction) else list(results)
        return [{"trial": first_trial + offset, "iteration": int(steps), "loss": float(reconstruction.final_loss),
                 **{name: float(value) for name, value in self.probe(reconstruction).items()}}
                for offset, reconstruction in enumerate(reconstructions)]


def curve_recorder(planned_iterations: int, points: int, probe: Probe | None) -> CurveRecorder | None:
    """The recorder for trials of ``planned_iterations`` steps, or None when ``points`` is 0."""
    every = recording_interval(planned_iterations, points)
    if not every:
        return None
    return CurveRecorder(every, probe or (lambda reconstruction: {}))
