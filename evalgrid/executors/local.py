"""A pool of worker processes on this machine.

Unlike ``concurrent.futures``, the launcher knows which cell each worker is running, so a
worker that dies (killed, segfault, out of host memory) is recorded as that cell's failure
and replaced, and the other cells go on. Workers die with the launcher (Linux PDEATHSIG),
so a killed run leaves nothing running that could write a result twice. The launcher wakes
at least every ``TICK_S`` to call ``tick`` (the progress line shows the running cells).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait

from evalgrid.errors import OutputFull
from evalgrid.evaluation.context import CellSummary
from evalgrid.executors.base import TICK_S, CellTask, ExecutorSettings, Report, Tick
from evalgrid.store.cell_progress import remove_progress
from evalgrid.store.layout import OutputDir

_PR_SET_PDEATHSIG = 1


class _Worker:
    def __init__(self, context, threads: int):
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child_conn, threads), daemon=True)
        self.process.start()
        child_conn.close()
        self.task: CellTask | None = None

    def assign(self, task: CellTask) -> None:
        self.task = task
        try:
            self.conn.send(task)
        except OSError:  # it died since its last report: its sentinel fires and the task is failed
            pass

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()
        if self.task is not None:  # killed mid-cell: its progress file is no running cell's
            remove_progress(OutputDir(self.task.context.out_root), [self.task.cell.cell_id])


class LocalExecutor:
    def __init__(self, settings: ExecutorSettings):
        self.settings = settings

    def run(self, tasks: Sequence[CellTask], report: Report, tick: Tick | None = None) -> None:
        context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has threads
        queue = collections.deque(tasks)
        workers = [_Worker(context, self.settings.threads_per_worker)
                   for _ in range(min(self.settings.workers, len(queue)))]
        try:
            for worker in workers:
                worker.assign(queue.popleft())
            while any(w.task is not None for w in workers):
                busy = [w for w in workers if w.task is not None]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                     timeout=TICK_S if tick is not None else None)
                if tick is not None:
                    tick()
                for index, worker in enumerate(workers):
                    if worker.task is None:
                        continue
                    outcome = _poll(worker)
                    if outcome is None:
                        continue
                    summary, survived = outcome
                    report(summary)
                    if not survived:
                        worker.stop()
                        worker = workers[index] = _Worker(context, self.settings.threads_per_worker)
                    worker.task = None
                    if queue:
                        worker.assign(queue.popleft())
        finally:
            for worker in workers:
                worker.stop()


def _poll(worker: _Worker) -> tuple[CellSummary, bool] | None:
    """(summary, worker survived) once the worker's cell has ended, else None."""
    try:
        if worker.conn.poll():
            received = worker.conn.recv()
            if isinstance(received, OutputFull):
                raise received  # the disk is full: the run stops (the other workers are stopped)
            return received, True
    except (EOFError, OSError):
        pass
    else:
        if worker.process.is_alive():
            return None
    worker.process.join(timeout=5)
    code = worker.process.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
    task = worker.task
    from evalgrid.evaluation.pipeline import record_failure  # a worker died: the launcher records it

    return record_failure(task.cell, task.context, "WorkerDied", f"the worker process running this cell {how}"), False


def _worker_main(conn: Connection, threads: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the launcher decides
    import torch

    from evalgrid.evaluation.pipeline import execute_cell  # in the worker: the launcher needs no torch

    torch.set_num_threads(threads)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        try:
            outcome = execute_cell(task.cell, task.context)
        except OutputFull as full:
            outcome = full
        conn.send(outcome)


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the launcher died before prctl took effect
            os._exit(1)
    except OSError:  # not Linux: workers are still killed on a clean stop
        pass
