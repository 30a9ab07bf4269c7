"""Running a grid into an output directory: lock, record the grid, skip what is done, dispatch."""

from __future__ import annotations

import fcntl
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from evalgrid.errors import UserError
from evalgrid.evaluation.context import CellContext, CellSummary
from evalgrid.executors import EXECUTORS
from evalgrid.evaluation.packing import pack_size
from evalgrid.executors.base import TICK_S, CellTask, ExecutorSettings, Report, Scheduler, Tick, cell_tasks
from evalgrid.grid import Grid
from evalgrid.grid.sections import SlurmOptions
from evalgrid.launch.provenance import current_provenance
from evalgrid.store.atomic import sweep_temporaries, write_if_changed
from evalgrid.store.cell_progress import CellProgress, read_running, remove_leftovers, this_host, utc_now
from evalgrid.store.heal import damaged_results, quarantine
from evalgrid.executors.slurm.ledger import Submission
from evalgrid.store.layout import OutputDir


@dataclass(frozen=True)
class RunSettings:
    executor: str
    workers: int
    device: str
    threads_per_worker: int  # 0: the machine's cores divided among the workers
    slurm: SlurmOptions | None = None  # resolved (profile and grid), for the slurm executor
    cells_per_device: int = 1  # local pool: this many workers per GPU (or on the CPU); 1: ``workers`` alone
    alongside: bool = False  # run even though Slurm tasks of this directory are queued or running
    stack_trials: int = 0  # a cell's trials run together as stacked lanes, at most this many (evaluation/trials.py); 0: evaluation/packing.py's rule
    pack_cells: int = 0  # cells run as lanes of one stacked attack, at most this many (evaluation/packed.py); 0: evaluation/packing.py's rule
    speedups: tuple[str, ...] = ()  # attack-loop switches (evalgrid/evaluation/speedups.py)
    check: bool = True  # the preflight (files, models); retry skips it: DIR's grid was checked when first run

    def executor_settings(self, say: Callable[[str], None] = lambda line: None) -> ExecutorSettings:
        """What the executor is given; a ``workers`` that contradicts ``cells_per_device`` is a UserError."""
        from evalgrid.executors.devices import pool_devices, pool_size

        devices = pool_devices(self.device) if self.cells_per_device > 1 else ()  # 1: no GPU is counted
        workers = pool_size(self.workers, self.cells_per_device, devices)
        threads = self.threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        return ExecutorSettings(workers=workers, threads_per_worker=threads, slurm=self.slurm, devices=devices,
                                cells_per_device=self.cells_per_device, say=say)


@dataclass(frozen=True)
class RunOutcome:
    finished: list[CellSummary]
    skipped: int  # cells already done before this run
    held: int = 0  # cells left out because a queued or running Slurm task holds them
    submission: Submission | None = None  # what a scheduler (slurm) was given


def check_speedups(names: tuple[str, ...]) -> None:
    from evalgrid.evaluation.speedups import unknown_speedup

    problem = unknown_speedup(names)
    if problem:
        raise UserError(f"--speedups: {problem}")


def check_device(device: str) -> None:
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for (--device or [run] device) but torch sees no CUDA GPU "
                        f"here (torch {torch.__version__}); use --device cpu, or auto to take a GPU when present.")


def pending_cells(grid: Grid, out: OutputDir) -> list:
    done = out.done_ids()
    return [cell for cell in grid.cells if cell.cell_id not in done]


def cells_to_run(grid: Grid, out: OutputDir, alongside: bool, fresh: bool = True) -> tuple[list, set[str]]:
    """The cells without a result that no Slurm task holds, and the ids of those one holds."""
    pending = pending_cells(grid, out)
    held = held_by_slurm(out, pending, alongside, fresh)
    return [cell for cell in pending if cell.cell_id not in held], held


def held_by_slurm(out: OutputDir, pending: list, alongside: bool, fresh: bool = True) -> set[str]:
    """Ids of pending cells that queued or running Slurm tasks of ``out`` hold; refuses to go on
    while there are any unless ``alongside`` (then they are left to their tasks)."""
    from evalgrid.executors.slurm.accounting import NoAccounting
    from evalgrid.executors.slurm.cells import active_cells

    try:
        held = set(active_cells(out, [cell.cell_id for cell in pending], fresh))
    except NoAccounting as error:
        if not alongside:
            raise UserError(f"{out.root} was submitted to Slurm, but {error} Pass --alongside to run its "
                            f"cells here all the same.") from None
        return set()
    if held and not alongside:
        raise UserError(f"{out.root}: {len(held)} cell(s) of this directory are queued or running on Slurm "
                        f"(see: evalgrid status {out.root}). Wait for them, stop them with: evalgrid cancel "
                        f"{out.root}, or pass --alongside to run only the cells no task holds.")
    return held


def grid_as_run(grid: Grid) -> str:
    """The grid file as run: extends resolved, data root absolute (so DIR/grid.toml is self-contained)."""
    resolved = dict(grid.resolved)
    if grid.data_root is not None:
        resolved["data"] = {**resolved.get("data", {}), "root": str(grid.data_root)}
    if grid.stage_cache is not None:
        resolved["run"] = {**resolved.get("run", {}), "stage_cache": str(grid.stage_cache)}
    header = f"# evalgrid: the grid as run, from {grid.source} (extends resolved)\n"
    return header + tomli_w.dumps(resolved)


@contextmanager
def exclusive(out: OutputDir) -> Iterator[None]:
    """Hold DIR's lock for the run; a second run on the same DIR is refused, not interleaved. A DIR
    that cannot be made or written (read-only, under a file, ...) is a UserError, before anything is written."""
    try:
        out.root.mkdir(parents=True, exist_ok=True)
        handle = open(out.lock, "a+")
    except OSError as error:
        raise UserError(f"{out.root}: the output directory cannot be used ({error.strerror or error}"
                        f"{f': {error.filename}' if error.filename else ''}); give --out a folder you can "
                        f"write, or free that path.") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"{out.root}: another evalgrid run is using this directory ({holder}); "
                        f"wait for it to finish or stop it first.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C: finished cells stay, workers are stopped."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


Watch = Callable[[list[CellProgress]], None]  # the running cells' progress, the longest-running first


def running_cells_tick(out: OutputDir, cell_ids: list[str], watch: Watch,
                       clock: Callable[[], float] = time.monotonic) -> Tick:
    """The executors' tick: hands ``watch`` the live progress files of ``cell_ids`` (at most
    twice per ``TICK_S``: a pool wakes for every cell that ends too). Never raises: the progress
    line must not stop a run."""
    ids, host, last = set(cell_ids), this_host(), [-math.inf]

    def tick() -> None:
        if clock() - last[0] < TICK_S / 2:
            return
        last[0] = clock()
        try:
            # this run's workers write these files (a killed run's were removed): only a gone process makes one stale
            watch(read_running(out, ids).live(utc_now(), host, max_age_s=math.inf))
        except Exception:  # noqa: BLE001 - a view of the run, never a reason to stop it
            pass

    return tick


def run_grid(grid: Grid, out_root: Path, settings: RunSettings, report: Report,
             on_start=lambda pending, skipped: None, say=lambda line: None, watch: Watch | None = None) -> RunOutcome:
    """Run every cell of ``grid`` that has no result in ``out_root`` yet. Damaged result files
    are moved to DIR/quarantine/ first (``say`` gets a line for each) and their cells run again.
    ``watch`` gets the running cells' progress (trial, iteration, loss) about every second."""
    make_executor = EXECUTORS[settings.executor]  # an unknown name raises, listing the valid ones
    executor = make_executor(settings.executor_settings(say))
    if not isinstance(executor, Scheduler):  # a scheduler's cells meet their device on their own nodes
        check_device(settings.device)
    check_speedups(settings.speedups)
    if settings.check:  # all before anything is written
        from evalgrid.launch.preflight import check_ready

        check_ready(grid)
    job_name = f"evalgrid-{grid.name}"
    out = OutputDir(Path(out_root))
    pending, held = cells_to_run(grid, out, settings.alongside, fresh=False)
    if isinstance(executor, Scheduler) and pending:
        executor.check(job_name)
    finished: list[CellSummary] = []
    with exclusive(out), sigterm_as_interrupt():
        try:
            for line in quarantine(out, damaged_results(out)):
                say(line)
            stage_cache = grid.stage_cache if grid.stage_cache is not None else out.stages
            sweep_temporaries(out.root, keep_out=stage_cache)  # the stage cache is swept under its own lock
            write_if_changed(out.grid_toml, grid_as_run(grid))
            write_if_changed(out.cell_ids_file, "".join(f"{cell.cell_id}\n" for cell in grid.cells))
        except OSError as error:
            raise UserError(f"{out.root}: the output directory cannot be written ({error.strerror or error}"
                            f"{f': {error.filename}' if error.filename else ''}); no cell was run. Give --out a "
                            f"folder you can write, or free space there, and run again.") from None
        pending, held = cells_to_run(grid, out, settings.alongside)  # again: a run may have got in first
        remove_leftovers(out, [cell.cell_id for cell in pending])  # progress files of killed runs
        skipped = len(grid.cells) - len(pending) - len(held)
        on_start(len(pending), skipped)
        context = CellContext(out_root=out.root.resolve(), grid_name=grid.name, data_root=grid.data_root,
                              device=settings.device, provenance=current_provenance(),
                              stage_cache=grid.stage_cache,
                              stack_trials=settings.stack_trials, pack_cells=settings.pack_cells,
                              speedups=settings.speedups,
                              curve_points=grid.run.curve_points)
        if isinstance(executor, Scheduler):
            submission = executor.submit([CellTask(cell, context) for cell in pending], out,
                                         job_name=job_name, grid_file=grid.source)
            return RunOutcome(finished=[], skipped=skipped, held=len(held), submission=submission)

        def record(summary: CellSummary) -> None:
            finished.append(summary)
            report(summary)

        tick = running_cells_tick(out, [cell.cell_id for cell in pending], watch) if watch is not None else None
        packs = pack_size(settings.pack_cells, settings.device)  # a Slurm task packs its own, on its node
        executor.run(cell_tasks(pending, context, packs), record, tick)
    return RunOutcome(finished=finished, skipped=skipped, held=len(held))
