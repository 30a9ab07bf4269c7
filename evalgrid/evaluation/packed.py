"""Several cells' attacks as lanes of one stacked attack: *packed cells* (``[run] pack_cells``).

Cells with one :func:`~evalgrid.evaluation.packing.pack_key` (attack and options, trials,
architecture, batch shape) are prepared one by one as :func:`~.pipeline.prepare` prepares a
cell alone (global model, victim's round, attacker's view); then every trial of every cell runs
as a lane of the attack's stacked form (evalgrid/attacks/stacked.py), each lane with its own
weights, shared update and start, drawn from its own cell's trial generator; then each cell is
scored and recorded alone, as :func:`~.pipeline.execute_cell` records it. A lane is the
sequential attack: only the floating-point order of the batched kernels differs (the tests
compare the numbers with the cells run alone).

What a pack does not do, and what it does instead:

- It does not checkpoint its attack. A stop signal (preemption, the time limit) ends the pack
  with no row written for its cells, which then run again from their start, with the same
  numbers; progress is lost, never mixed. A cell that already holds a checkpoint (stopped
  while running alone) resumes alone.
- Any failure of the pack itself (views that do not stack, options without a stacked form, a
  model that draws random numbers, a non-finite loss in some lane, memory) runs its cells one
  by one instead, so a failure is recorded against the cell that causes it alone; a line on
  stderr says why, and their rows say ``cells_packed`` 1.
- Its cells' progress files show the pack's step count, without a loss (a step's loss is the
  sum over every cell's lanes).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from torch.nn.attention import SDPBackend, sdpa_kernel

from evalgrid.errors import OutputFull
from evalgrid.evaluation.checkpoint import AttackProgress, Interrupted, rng_state, set_rng_state, stop_requested
from evalgrid.evaluation.context import CellContext, CellSummary
from evalgrid.evaluation.convergence import CurveRecorder, curve_recorder
from evalgrid.evaluation.pipeline import (PreparedCell, cell_checkpoint, execute_cell, finish, outcome, outcome_row,
                                          prepare)
from evalgrid.evaluation.speedups import speedups
from evalgrid.evaluation.trials import stackable_model, stacked_form, trial_generator
from evalgrid.fl.threat_model import Reconstruction
from evalgrid.grid.cell import CellConfig
from evalgrid.store.cell_progress import CellProgressWriter, start_progress
from evalgrid.store.layout import OutputDir


class NotPacked(ValueError):
    """These cells cannot run as one pack (the message says why); they run one by one."""


@dataclass
class _Lanes:
    """A pack's cells while their stacked attack runs: each one's progress file and record."""

    cells: list[PreparedCell]
    watches: list[CellProgressWriter]
    progress: list[AttackProgress]


def execute_pack(cells: Sequence[CellConfig], context: CellContext) -> list[CellSummary]:
    """Run ``cells`` (one pack of :func:`~evalgrid.evaluation.packing.pack_groups`) as lanes of
    one stacked attack, then record each as :func:`execute_cell` would; one cell, cells that
    hold a checkpoint, and a pack that cannot run together run one by one (module docstring)."""
    out = OutputDir(context.out_root)
    holds_checkpoint = {cell.cell_id: out.checkpoint(cell.cell_id).is_file() for cell in cells}
    resuming = [cell for cell in cells if holds_checkpoint[cell.cell_id]]
    together = [cell for cell in cells if not holds_checkpoint[cell.cell_id]]
    summaries = [execute_cell(cell, context) for cell in resuming]
    if len(together) < 2:
        return summaries + [execute_cell(cell, context) for cell in together]
    started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    watches = [start_progress(out, cell.cell_id, cell.trials) for cell in together]
    lanes: _Lanes | None = None
    try:
        try:
            lanes = _Lanes([prepare(cell, context) for cell in together], watches, [])
            results = _attack(lanes, context)
        except OutputFull:
            raise
        except Exception as error:  # noqa: BLE001 - each cell alone records its own failure, if it fails alone
            results, lanes = None, None  # the pack's models and tensors go before the cells run alone
            _say(f"cells {', '.join(cell.cell_id for cell in together)} run one by one, not packed "
                 f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
        if results is not None:
            for watch in watches:
                watch.phase("scoring")
            rows = [outcome_row(p.cell, context, lambda p=p, r=r, g=g: outcome(p, context, r, g, len(together)))
                    for p, r, g in zip(lanes.cells, results, lanes.progress)]
    finally:
        for watch in watches:
            watch.end()
    if results is None:
        return summaries + [execute_cell(cell, context) for cell in together]
    share = (time.perf_counter() - clock) / len(together)
    for cell, row in zip(together, rows):
        summaries.append(finish(cell, context, row, started, share))
        cell_checkpoint(cell, context).discard()
    return summaries


def _say(line: str) -> None:
    """A note on the process' stderr (a Slurm task's log, the terminal of a local run)."""
    print(f"evalgrid: {line}", file=sys.stderr, flush=True)


def _attack(lanes: _Lanes, context: CellContext) -> list[list[Reconstruction]]:
    """Every cell's trials, run as lanes of the attack's stacked form: one list of trials per cell."""
    cells = lanes.cells
    first = cells[0].cell
    stacked = stacked_form(first.attack.name, first.attack.options)
    if stacked is None:
        raise NotPacked(f"the {first.attack.name} attack has no stacked form for these options")
    if not all(stackable_model(p.view.model) for p in cells):
        raise NotPacked("the attacked model draws random numbers in its forward pass (dropout)")
    trials = first.trials
    attack = stacked(first.attack.options, [p.view for p in cells], trials)  # NotStackable: views differ
    steps = attack.planned_iterations() // stacked.lanes_per_trial(first.attack.options)
    recorders = [curve_recorder(steps, context.curve_points, p.probe()) for p in cells]
    lanes.progress = [AttackProgress(stacked=trials) for _ in cells]
    for watch in lanes.watches:
        watch.trial_started(0, trials, steps, 0, trials * stacked.lanes_per_trial(first.attack.options))
    generators = [trial_generator(p.cell.seed, t) for p in cells for t in range(trials)]
    with sdpa_kernel(SDPBackend.MATH), speedups(context.speedups, cells[0].view.model):
        state = attack.start(None, generators)
        done = 0
        while not attack.done(state):
            attack.step(None, state)
            done += 1
            for watch in lanes.watches:
                watch.stepped(done, None)
            if recorders[0] is not None and recorders[0].due(done) and not attack.done(state):
                _record(recorders, lanes.progress, attack.result(None, state), trials, done)
            signum = stop_requested()
            if signum is not None and not attack.done(state):
                raise Interrupted(signum)  # nothing saved: the pack's cells run again from their start
        results = attack.result(None, state)
    if recorders[0] is not None:
        _record(recorders, lanes.progress, results, trials, done)
    return [results[index:index + trials] for index in range(0, len(results), trials)]


def _record(recorders: list[CurveRecorder | None], progress: list[AttackProgress],
            results: list[Reconstruction], trials: int, steps: int) -> None:
    """Each cell's curve points of its slice of ``results``; torch's generators are put back."""
    saved = rng_state()
    try:
        for number, (recorder, cell_progress) in enumerate(zip(recorders, progress)):
            if recorder is not None:
                cell_progress.curve.extend(recorder.points(results[number * trials:(number + 1) * trials], 0, steps))
    finally:
        set_rng_state(saved)
