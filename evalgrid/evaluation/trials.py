"""A cell's T attack trials: one after another, or several at once as stacked lanes.

Trial t draws its start from its own generator (the cell's seed, the attack stream, t) in
both modes, so a trial is the same attack whichever way it runs. Stacking
(:mod:`evalgrid.attacks.stacked`, ``[run] stack_trials``) runs up to that many of the
remaining trials together when the attack has a stacked form and the model allows it; the
finished trials and a running chunk are checkpointed like a single trial, and a checkpoint
resumes in the mode it was taken in.

Both modes take the convergence record (:mod:`evalgrid.evaluation.convergence`, ``[run]
curve_points``) of every trial. Its iteration is the steps the running attack has taken: a
sequential trial counts its restarts' steps one after another (up to ``planned_iterations``),
while a stacked chunk runs a trial's restarts side by side as lanes, so there the iteration
counts each restart's steps (up to the attack's ``iterations``) and the trial's point holds
its best restart so far. With one restart (the presets) the two modes have the same points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from evalgrid.evaluation.checkpoint import AttackProgress, run_resumable, stop_between_trials
from evalgrid.evaluation.building import ATTACK_STREAM, stream_seed
from evalgrid.evaluation.convergence import Probe, curve_recorder
from evalgrid.evaluation.speedups import speedups
from evalgrid.fl.threat_model import Reconstruction, ServerView

if TYPE_CHECKING:
    from evalgrid.store.cell_progress import CellProgressWriter

STACKED_FIELD = "targets"  # a field only the stacked state has: marks a stacked snapshot


def trial_generator(seed: int, trial: int) -> torch.Generator:
    """Trial ``trial``'s generator, on the CPU: the same start on any device."""
    return torch.Generator().manual_seed(stream_seed(seed, ATTACK_STREAM, trial))


def stacked_form(attack_name: str, options: Any) -> Callable[..., Any] | None:
    """The stacked attack's constructor ``(options, views, trials_per_view)`` that the attack's
    catalogue entry names, or None when it has none or it does not support ``options``."""
    from evalgrid.catalogue import ATTACKS

    stacked = ATTACKS[attack_name].stacked
    if stacked is None:
        return None
    constructor = stacked.resolve() if hasattr(stacked, "resolve") else stacked
    return constructor if constructor.supports(options) else None


def stackable_model(model: nn.Module) -> bool:
    """False when the model draws random numbers in its forward pass (dropout in train mode):
    stacked lanes would draw other numbers than the sequential trials."""
    return not any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 and m.training for m in model.modules())


def run_trials(attack_name: str, options: Any, view: ServerView, seed: int, trials: int, progress: AttackProgress,
               save: Callable[[AttackProgress], None], stack: int,
               switches: tuple[str, ...] = (), curve_points: int = 0,
               probe: Probe | None = None, watch: CellProgressWriter | None = None) -> list[Reconstruction]:
    """Every trial's reconstruction, finished ones from ``progress``; new ones are appended to
    ``progress.finished`` (tensors on the CPU) as they end. ``stack``: at most this many trials
    at once; ``switches``: :mod:`evalgrid.evaluation.speedups`. ``curve_points`` > 0 records
    about that many points per trial in ``progress.curve``, each measured by ``probe`` (see the
    module docstring for the iteration of a stacked chunk); 0 records none. ``watch``: the cell's
    progress file, told each trial's start and each step (evalgrid/store/cell_progress.py)."""
    from evalgrid.catalogue import ATTACKS

    device = next(view.model.parameters()).device
    stacked = stacked_form(attack_name, options)
    stack = stack if stacked is not None and stackable_model(view.model) else 1
    # MATH: the only attention kernel with a double backward
    with sdpa_kernel(SDPBackend.MATH), speedups(switches, view.model):
        while len(progress.finished) < trials:
            first = len(progress.finished)
            stop_between_trials(progress, first, save)
            running = progress.state if progress.trial == first else None
            chunk = _chunk_size(running, stacked, options, trials - first, stack)
            if chunk > 1:
                attack = stacked(options, [view], chunk)
                generators = [trial_generator(seed, t) for t in range(first, first + chunk)]
                steps = attack.planned_iterations() // stacked.lanes_per_trial(options)  # restarts side by side
                recorder = curve_recorder(steps, curve_points, probe)
                _trial_started(watch, progress, first, chunk, steps, lanes=chunk * stacked.lanes_per_trial(options))
                results = run_resumable(attack, view, generators, progress, first, save, recorder, watch)
            else:
                attack = ATTACKS[attack_name].build(options)
                recorder = curve_recorder(attack.planned_iterations(), curve_points, probe)
                _trial_started(watch, progress, first, 1, attack.planned_iterations())
                results = [run_resumable(attack, view, trial_generator(seed, first), progress, first, save, recorder,
                                         watch)]
            progress.state, progress.stacked = None, max(progress.stacked, chunk)
            progress.finished.extend(_on_cpu(r) for r in results)
    return [Reconstruction(saved["images"].to(device), saved["labels"].to(device), saved["iterations"],
                           saved["final_loss"], _terms(saved.get("loss_terms", {}))) for saved in progress.finished]


def _trial_started(watch: CellProgressWriter | None, progress: AttackProgress, first: int, chunk: int,
                   planned: int, lanes: int = 1) -> None:
    """Tell the progress file that trials ``first`` .. ``first + chunk - 1`` start (or resume);
    a stacked chunk's step checks the sum of its ``lanes``' losses."""
    if watch is not None:
        resumed = progress.steps if progress.state is not None and progress.trial == first else 0
        watch.trial_started(first, chunk, planned, resumed, lanes)


def _chunk_size(running: dict[str, Any] | None, stacked: Any, options: Any, remaining: int, stack: int) -> int:
    """How many trials run together next: a running chunk's own size, else up to ``stack``."""
    if running is None:
        return min(stack, remaining)
    if STACKED_FIELD not in running:
        return 1
    return len(running["images"]) // stacked.lanes_per_trial(options)


def _on_cpu(reconstruction: Reconstruction) -> dict[str, Any]:
    return {"images": reconstruction.images.detach().cpu(), "labels": reconstruction.labels.detach().cpu(),
            "iterations": int(reconstruction.iterations), "final_loss": float(reconstruction.final_loss),
            "loss_terms": {name: [float(first), float(last)] for name, (first, last) in
                           reconstruction.loss_terms.items()}}


def _terms(saved: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Loss terms from a checkpoint (lists: weights_only loading keeps plain containers)."""
    return {str(name): (float(values[0]), float(values[1])) for name, values in saved.items()}
