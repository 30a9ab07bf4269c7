"""Stopping a cell mid-attack and resuming it later from where it stopped.

A batch scheduler warns a job before it stops it (Slurm: SIGUSR2 before the time limit,
SIGTERM on preemption or ``scontrol requeue``). The job's signal handler only calls
:func:`request_stop`; the attack loop notices at the next step boundary, where the state is
consistent, writes a :class:`CellCheckpoint` (finished trials, the running trial's attack
state, the RNG, the convergence record so far) and raises :class:`Interrupted`. Whoever runs
the cell next finds the checkpoint and continues from that iteration: the result equals an
uninterrupted run's.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evalgrid.attacks.base import last_checked_loss
from evalgrid.store.atomic import atomic_write

if TYPE_CHECKING:
    from evalgrid.evaluation.convergence import CurveRecorder
    from evalgrid.store.cell_progress import CellProgressWriter

CHECKPOINT_SCHEMA = 1

_stop_signal: int | None = None


def request_stop(signum: int) -> None:
    """Ask the running attack to checkpoint and stop at its next step (safe in a signal handler)."""
    global _stop_signal
    _stop_signal = signum


def stop_requested() -> int | None:
    """The signal that asked to stop, or None."""
    return _stop_signal


def clear_stop() -> None:
    global _stop_signal
    _stop_signal = None


class Interrupted(BaseException):
    """The cell stopped because it was asked to; its progress is in its checkpoint.

    A BaseException, like KeyboardInterrupt: a cell that was stopped has not failed."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class AttackProgress:
    """Where a cell's attack stands: the finished trials and the running one."""

    finished: list[dict[str, Any]] = field(default_factory=list)  # Reconstruction fields, tensors on the CPU
    trial: int = 0  # the trial ``state`` belongs to
    state: dict[str, Any] | None = None  # the attack's snapshot (None: the trial had not started)
    steps: int = 0  # optimiser steps the running trial had taken
    rng: dict[str, Any] | None = None  # torch's global generators when the snapshot was taken
    resumed_at: list[int] = field(default_factory=list)  # attack iterations done when each resume began
    stacked: int = 1  # the most trials that ran together (evalgrid/evaluation/trials.py)
    curve: list[dict[str, Any]] = field(default_factory=list)  # convergence points (evaluation/convergence.py)


@dataclass(frozen=True)
class CellCheckpoint:
    """DIR/checkpoints/<cell id>.pt: one cell's :class:`AttackProgress`, written atomically."""

    path: Path
    cell_id: str
    config: str  # the cell's canonical config: a checkpoint of another config is never used

    def load(self) -> AttackProgress | None:
        if not self.path.is_file():
            return None
        saved = torch.load(self.path, map_location="cpu", weights_only=True)
        if saved.get("schema") != CHECKPOINT_SCHEMA or saved.get("config") != self.config:
            return None
        return AttackProgress(**saved["progress"])

    def save(self, progress: AttackProgress) -> None:
        body = {"schema": CHECKPOINT_SCHEMA, "cell_id": self.cell_id, "config": self.config,
                "progress": progress.__dict__}
        atomic_write(self.path, lambda tmp: torch.save(body, tmp))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_resumable(attack: Any, view: Any, generator: torch.Generator, progress: AttackProgress, trial: int,
                  save: Callable[[AttackProgress], None], recorder: CurveRecorder | None = None,
                  watch: CellProgressWriter | None = None) -> Any:
    """Run one trial of a :class:`SteppedAttack` to its end, from ``progress`` when it holds this
    trial's state; when a stop is requested, save the progress and raise :class:`Interrupted`.

    With a ``recorder``, every k-th step (k = ``recorder.every``, counted from the trial's
    start as ``steps`` is) and the last step append the attack's result there to
    ``progress.curve``, ``trial`` numbering its first reconstruction (a stacked chunk's result
    is one per trial: ``trial``, ``trial`` + 1, ...). A point is taken before a stop is
    checked, so the saved progress holds it and the resumed run does not take it again.

    With a ``watch``, each step tells the cell's progress file (evalgrid/store/cell_progress.py,
    throttled there) the step count and the loss the step checked (``last_checked_loss``: no
    computation of its own, unlike a curve point); the attack's numbers are untouched."""
    if progress.state is not None and progress.trial == trial:
        state = attack.restore(view, generator, progress.state)
        set_rng_state(progress.rng)
        steps = progress.steps
        progress.resumed_at.append(sum(r["iterations"] for r in progress.finished) + steps)
    else:
        state, steps = attack.start(view, generator), 0
    before = last_checked_loss()  # not this trial's: an attack that never checks a loss shows none
    while not attack.done(state):
        attack.step(view, state)
        steps += 1
        if watch is not None:
            loss = last_checked_loss()
            watch.stepped(steps, None if loss is before else loss)
        if recorder is not None and recorder.due(steps) and not attack.done(state):
            progress.curve.extend(_points(recorder, lambda: attack.result(view, state), trial, steps))
        signum = stop_requested()
        if signum is not None and not attack.done(state):
            progress.trial, progress.state = trial, attack.snapshot(state)
            progress.steps, progress.rng = steps, rng_state()
            save(progress)
            raise Interrupted(signum)
    result = attack.result(view, state)
    if recorder is not None:
        progress.curve.extend(_points(recorder, lambda: result, trial, steps))
    return result


def _points(recorder: CurveRecorder, result: Callable[[], Any], trial: int, steps: int) -> list[dict[str, Any]]:
    """The points of ``result()`` after ``steps`` steps; torch's global generators are put back
    afterwards (a model with dropout draws from them), so the run goes on as if nothing was recorded."""
    saved = rng_state()
    try:
        return recorder.points(result(), trial, steps)
    finally:
        set_rng_state(saved)


def stop_between_trials(progress: AttackProgress, next_trial: int, save: Callable[[AttackProgress], None]) -> None:
    """At a trial boundary: when a stop was requested, save the finished trials and stop."""
    signum = stop_requested()
    if signum is not None:
        progress.trial, progress.state, progress.steps, progress.rng = next_trial, None, 0, None
        save(progress)
        raise Interrupted(signum)
