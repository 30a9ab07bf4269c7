"""A pool of worker processes on this machine.

Unlike ``concurrent.futures``, the launcher knows which cell each worker is running, so a
worker that dies (killed, segfault, out of host memory) is recorded as that cell's failure
and replaced, and the other cells go on. Workers die with the launcher (Linux PDEATHSIG),
so a killed run leaves nothing running that could write a result twice. The launcher wakes
at least every ``TICK_S`` to call ``tick`` (the progress line shows the running cells).

With ``cells_per_device = k`` on GPUs each worker is pinned to one GPU, k per GPU
(evalgrid/executors/devices.py); a GPU's first worker runs one cell alone and the others start
once its memory was measured, fewer if k do not fit (evalgrid/executors/device_memory.py).
With ``stop_signals`` (a Slurm task's), such a signal is forwarded to the running workers, whose
attacks checkpoint and stop; no further cell starts and ``stopped_by`` says which signal it was.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from evalgrid.errors import OutputFull
from evalgrid.evaluation.context import CellSummary
from evalgrid.executors.base import TICK_S, CellTask, ExecutorSettings, Report, Tick
from evalgrid.executors.device_memory import DeviceBudget, DeviceMemory
from evalgrid.executors.devices import worker_devices
from evalgrid.store.cell_progress import remove_progress
from evalgrid.store.layout import OutputDir

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class _Ended:
    """A worker's cells ended (done or failed): one, or a pack's; its GPU memory when the worker is pinned to one."""

    summaries: tuple[CellSummary, ...]
    memory: DeviceMemory | None = None


@dataclass(frozen=True)
class _Stopped:
    """A worker's cell stopped on a stop signal; its progress is in its checkpoint."""

    signum: int


@dataclass(frozen=True)
class _Died:
    exitcode: int | None


class _Worker:
    def __init__(self, context, threads: int, device: str | None = None, stop_signals: tuple[int, ...] = ()):
        self.device = device
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child_conn, threads, device, stop_signals),
                                       daemon=True)
        self.process.start()
        child_conn.close()
        self.task: CellTask | None = None

    def assign(self, task: CellTask) -> None:
        self.task = task
        try:
            self.conn.send(task)
        except OSError:  # it died since its last report: its sentinel fires and the task is failed
            pass

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.process.pid, signum)
        except (ProcessLookupError, TypeError):  # gone already, or not started
            pass

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()
        if self.task is not None:  # killed mid-cell: its progress file is no running cell's
            remove_progress(OutputDir(self.task.context.out_root), [cell.cell_id for cell in self.task.cells])


class LocalExecutor:
    def __init__(self, settings: ExecutorSettings):
        self.settings = settings
        self.stopped_by: int | None = None  # the stop signal that ended the last run early

    def run(self, tasks: Sequence[CellTask], report: Report, tick: Tick | None = None) -> None:
        pool = _Pool(self.settings, tasks, report)
        try:
            pool.run(tick)
        finally:
            self.stopped_by = pool.stopped_by


class _Pool:
    """One run of the pool: its workers, the tasks not started yet, each GPU's worker budget."""

    def __init__(self, settings: ExecutorSettings, tasks: Sequence[CellTask], report: Report):
        self.settings, self.report = settings, report
        self.context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has threads
        self.queue = collections.deque(tasks)
        self.slots = (worker_devices(settings.devices, settings.cells_per_device) if settings.devices
                      else (None,) * settings.workers)  # each worker's GPU, None: not pinned
        self.budget = DeviceBudget(settings.cells_per_device, settings.say) if settings.devices else None
        self.workers: list[_Worker] = []
        self.stopped_by: int | None = None

    def run(self, tick: Tick | None) -> None:
        with self._forwarding_stops():
            try:
                self._start_workers()
                while busy := [w for w in self.workers if w.task is not None]:
                    wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                         timeout=TICK_S if tick is not None else None)
                    if tick is not None:
                        tick()
                    for worker in busy:
                        self._check(worker)
                    self._start_workers()
            finally:
                for worker in self.workers:
                    worker.stop()

    def _allowed(self, device: str | None) -> int:
        return self.budget.workers(device) if self.budget is not None and device is not None else len(self.slots)

    def _start_workers(self) -> None:
        """A worker, with a task, for each free slot its GPU's budget allows, while tasks remain."""
        live = collections.Counter(w.device for w in self.workers)
        seen: collections.Counter = collections.Counter()
        for device in self.slots:
            seen[device] += 1
            if not self.queue or self.stopped_by is not None:
                return
            if live[device] < seen[device] <= self._allowed(device):
                worker = _Worker(self.context, self.settings.threads_per_worker, device, self.settings.stop_signals)
                self.workers.append(worker)
                self._give(worker)

    def _check(self, worker: _Worker) -> None:
        """Act on what a busy worker sent, if anything: report its cell, give it the next one."""
        message = _receive(worker)
        if message is None:
            return
        if isinstance(message, _Died):
            if not (self.stopped_by is not None and message.exitcode == -self.stopped_by):  # else: stopped, not failed
                for summary in _failures(worker.task, message.exitcode):
                    self.report(summary)
            self._retire(worker)  # a new worker takes its slot (_start_workers)
            return
        worker.task = None
        if isinstance(message, _Stopped):  # the signal reached the worker alone: the others stop too
            self._stop(message.signum)
        if isinstance(message, _Ended):
            for summary in message.summaries:
                self.report(summary)
            if message.memory is not None and self.budget is not None:
                self.budget.measured(worker.device, message.memory)
        if sum(w.device == worker.device for w in self.workers) > self._allowed(worker.device):
            self._retire(worker)  # its GPU's memory holds fewer cells than were started
        elif self.queue and self.stopped_by is None:
            self._give(worker)

    def _give(self, worker: _Worker) -> None:
        """The next task to ``worker``; a stop signal that came meanwhile is passed on to it too."""
        worker.assign(self.queue.popleft())
        if self.stopped_by is not None:
            worker.signal(self.stopped_by)

    def _retire(self, worker: _Worker) -> None:
        worker.stop()
        self.workers.remove(worker)

    def _stop(self, signum: int) -> None:
        """Start no further cell, and pass ``signum`` on to the running ones (once)."""
        if self.stopped_by is not None:
            return
        self.stopped_by = signum
        for worker in self.workers:
            if worker.task is not None:
                worker.signal(signum)

    @contextmanager
    def _forwarding_stops(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, lambda signum, frame: self._stop(signum))
                    for sig in self.settings.stop_signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _receive(worker: _Worker) -> _Ended | _Stopped | _Died | None:
    """What the worker sent about its cell, _Died if it died without a word, None while it runs."""
    try:
        if worker.conn.poll():
            received = worker.conn.recv()
            if isinstance(received, OutputFull):
                raise received  # the disk is full: the run stops (the other workers are stopped)
            return received
    except (EOFError, OSError):
        pass
    else:
        if worker.process.is_alive():
            return None
    worker.process.join(timeout=5)
    return _Died(worker.process.exitcode)


def _failures(task: CellTask, code: int | None) -> list[CellSummary]:
    """Record the cells of a worker that died (the launcher writes their failed rows)."""
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
    from evalgrid.evaluation.pipeline import record_failure  # a worker died: the launcher records it

    what = "this cell" if not task.packed_with else f"this cell and the {len(task.packed_with)} packed with it"
    return [record_failure(cell, task.context, "WorkerDied", f"the worker process running {what} {how}")
            for cell in task.cells]


_early_stop: int | None = None  # a stop signal that came while the worker was starting


def _note_early_stop(signum, frame) -> None:
    global _early_stop
    _early_stop = signum


def _worker_main(conn: Connection, threads: int, device: str | None = None, stop_signals: tuple[int, ...] = ()
                 ) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the launcher decides
    for sig in stop_signals:  # kept, not fatal, until the attack can be asked to stop
        signal.signal(sig, _note_early_stop)
    if device is not None:
        from evalgrid.executors.devices import pin_to_gpu

        pin_to_gpu(device)  # before torch initialises CUDA
    import torch

    from evalgrid.evaluation.checkpoint import request_stop

    for sig in stop_signals:
        signal.signal(sig, lambda signum, frame: request_stop(signum))
    if _early_stop is not None:
        request_stop(_early_stop)
    torch.set_num_threads(threads)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        conn.send(_run_cell(task, measure=device is not None))


def _run_cell(task: CellTask, measure: bool) -> _Ended | _Stopped | OutputFull:
    """Run one cell (or a pack of them) in the worker: what it sends back."""
    from evalgrid.evaluation.checkpoint import Interrupted
    from evalgrid.evaluation.packed import execute_pack  # in the worker: the launcher needs no torch

    try:
        summaries = tuple(execute_pack(task.cells, task.context))
    except OutputFull as full:
        return full
    except Interrupted as stop:
        return _Stopped(stop.signum)
    if not measure:
        return _Ended(summaries)
    from evalgrid.executors.device_memory import measure_after_cell

    return _Ended(summaries, measure_after_cell())


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the launcher died before prctl took effect
            os._exit(1)
    except OSError:  # not Linux: workers are still killed on a clean stop
        pass
