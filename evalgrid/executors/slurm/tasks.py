"""What a Slurm task runs (pickled by submitit, called on the compute node).

A :class:`CellPack` runs its cells one after another in one process, so they share the
start-up (Python, torch, CUDA context, datasets, LPIPS weights). Cells already done are
skipped, so a requeued task picks up where it stopped. On SIGUSR2 (the time limit is near)
or SIGTERM (preemption, ``scontrol requeue``, ``scancel``) the running attack checkpoints at
its next step (evalgrid.evaluation.checkpoint); after SIGUSR2 submitit's handler requeues the task
(``Checkpointable``), after SIGTERM Slurm decides: a requeued task resumes from the checkpoint.

Cells of one architecture, batch shape and attack may run as lanes of one stacked attack
(``[run] pack_cells``, evalgrid/evaluation/packed.py; by default where measured to pay on the
node's device, evalgrid/evaluation/packing.py).

With ``cells_per_device = k`` > 1 the pack runs its cells k at a time per GPU of the task (or
k on its CPUs) through the local pool (evalgrid/executors/local.py), which forwards SIGUSR2 and
SIGTERM to its running workers: each running attack checkpoints, then the task stops as above.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

import submitit

from evalgrid.evaluation.context import CellContext, resolve_device
from evalgrid.grid.cell import CellConfig
from evalgrid.store.layout import OutputDir

# The cell pipeline (and torch) is imported on the compute node, when a task starts: the
# launcher pickles these classes by reference without importing it.

STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


def restarts() -> int:
    """How many times Slurm has requeued this task."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


class CellPack(submitit.helpers.Checkpointable):
    """Run cells in this process (or its pool of workers); one result file per cell, as with any executor."""

    cells_per_device = 1  # also for a pack pickled before the option existed, started again by a requeue

    def __init__(self, context: CellContext, threads: int, max_requeues: int, cells_per_device: int = 1):
        self.context, self.threads, self.max_requeues = context, threads, max_requeues
        self.cells_per_device = cells_per_device

    def __call__(self, cells: Sequence[CellConfig]) -> dict[str, str]:
        import torch

        torch.set_num_threads(self.threads)
        submitit_handlers = {sig: signal.signal(sig, _ask_to_stop) for sig in STOP_SIGNALS}
        try:
            return self._run(cells, submitit_handlers)
        finally:
            for sig, handler in submitit_handlers.items():
                signal.signal(sig, handler)

    def _run(self, cells: Sequence[CellConfig], submitit_handlers: dict) -> dict[str, str]:
        if self.cells_per_device > 1:
            return self._run_in_pool(cells, submitit_handlers)
        from evalgrid.evaluation.checkpoint import Interrupted, stop_requested
        from evalgrid.evaluation.packed import execute_pack
        from evalgrid.evaluation.packing import pack_groups

        outcome: dict[str, str] = {}
        number = {cell.cell_id: index for index, cell in enumerate(cells, 1)}
        for pack in pack_groups(cells, self._pack_size()):
            for cell in pack:  # settled when its turn comes: done meanwhile, or requeued too often
                if (settled := self._settled(cell)) is not None:
                    outcome[cell.cell_id] = settled
            pack = [cell for cell in pack if cell.cell_id not in outcome]
            if not pack:
                continue
            if len(pack) == 1:
                print(f"evalgrid: cell {pack[0].cell_id} ({number[pack[0].cell_id]}/{len(cells)} of this task) "
                      f"starting", flush=True)
            else:
                print(f"evalgrid: cells {', '.join(cell.cell_id for cell in pack)} "
                      f"({', '.join(str(number[cell.cell_id]) for cell in pack)}/{len(cells)} of this task, "
                      f"packed as lanes of one attack) starting", flush=True)
            try:
                for summary in execute_pack(pack, self.context):
                    outcome[summary.cell_id] = summary.status
                    print(f"evalgrid: cell {summary.cell_id} {summary.status}", flush=True)
            except Interrupted as stop:
                _stop_task(stop.signum, submitit_handlers)
            if stop_requested() is not None:  # the signal came outside an attack: stop before the next cell
                _stop_task(stop_requested(), submitit_handlers)
        return outcome

    def _pack_size(self) -> int:
        """The most cells run as lanes of one stacked attack: [run] pack_cells, or the measured rule for this node's device."""
        from evalgrid.evaluation.packing import pack_size

        return pack_size(self.context.pack_cells, self.context.device)

    def _settled(self, cell: CellConfig) -> str | None:
        """The outcome of a cell this task does not run: "done before" when it has a result,
        "failed" (recorded) when the task was requeued more than ``max_requeues`` times; else None."""
        from evalgrid.evaluation.pipeline import record_failure

        out = OutputDir(self.context.out_root)
        if out.done_result(cell.cell_id).is_file():
            return "done before"
        if restarts() > self.max_requeues:
            return record_failure(
                cell, self.context, "TooManyRequeues",
                f"the Slurm task was requeued {restarts()} times, more than max_requeues = {self.max_requeues}; "
                f"its progress is kept in {out.checkpoint(cell.cell_id)} for the next run").status
        return None

    def _run_in_pool(self, cells: Sequence[CellConfig], submitit_handlers: dict) -> dict[str, str]:
        """The cells to run, ``cells_per_device`` at a time per device, in worker processes that
        share the task's GPUs (its ``cpus_per_task`` divided among them)."""
        from evalgrid.executors.base import ExecutorSettings, cell_tasks
        from evalgrid.executors.devices import pool_devices, pool_size
        from evalgrid.executors.local import LocalExecutor

        outcome = {cell.cell_id: settled for cell in cells if (settled := self._settled(cell)) is not None}
        tasks = cell_tasks([cell for cell in cells if cell.cell_id not in outcome], self.context, self._pack_size())
        devices = pool_devices(self.context.device)
        workers = pool_size(1, self.cells_per_device, devices)
        pool = LocalExecutor(ExecutorSettings(workers=workers, threads_per_worker=max(1, self.threads // workers),
                                              devices=devices, cells_per_device=self.cells_per_device,
                                              stop_signals=STOP_SIGNALS, say=_say))
        _say(f"{sum(len(task.cells) for task in tasks)} cell(s) to run, {self.cells_per_device} at a time on "
             f"{'each of GPU(s) ' + ', '.join(devices) if devices else 'the CPU'}")

        def report(summary) -> None:
            outcome[summary.cell_id] = summary.status
            _say(f"cell {summary.cell_id} {summary.status}")

        pool.run(tasks, report)
        if pool.stopped_by is not None:
            _stop_task(pool.stopped_by, submitit_handlers)
        return outcome


class StageTraining(submitit.helpers.Checkpointable):
    """Train the stage models of some setups, or a prior, into the cache (once each:
    evalgrid.fl.stage_cache, evalgrid.priors.cache). Requeued on the time limit by submitit;
    training resumes from the largest cached round, or from the prior's saved progress."""

    def __init__(self, context: CellContext, threads: int):
        self.context, self.threads = context, threads

    def __call__(self, requests: Sequence) -> list[str]:
        import torch

        from evalgrid.fl.stage_cache import train_stages
        from evalgrid.priors.cache import train_priors
        from evalgrid.priors.request import PriorRequest

        torch.set_num_threads(self.threads)
        device = resolve_device(self.context.device)
        priors = [r for r in requests if isinstance(r, PriorRequest)]
        stages = [r for r in requests if not isinstance(r, PriorRequest)]
        records = train_stages(stages, self.context.data_root, self.context.stages, device)
        trained = train_priors(priors, self.context.data_root, self.context.stages, device)
        return ([f"{r.key}: round {r.round}, accuracy {r.test_accuracy:.3f}" for r in records]
                + [f"{r.key}: trained in {r.train_seconds:.0f} s" for r in trained])


def _say(line: str) -> None:
    print(f"evalgrid: {line}", flush=True)


def _ask_to_stop(signum, frame) -> None:
    print(f"evalgrid: {signal.Signals(signum).name} received: checkpointing at the next attack step", flush=True)
    from evalgrid.evaluation.checkpoint import request_stop

    request_stop(signum)


def _stop_task(signum: int, submitit_handlers: dict) -> None:
    """After the checkpoint: let submitit requeue the task (SIGUSR2), or leave (SIGTERM)."""
    handler = submitit_handlers.get(signal.Signals(signum))
    if signum == signal.SIGUSR2 and callable(handler):
        handler(signum, None)  # submitit: checkpoint() (our arguments again), scontrol requeue, exit
    print(f"evalgrid: stopping after {signal.Signals(signum).name}; progress is checkpointed", flush=True)
    sys.exit(128 + signum)
