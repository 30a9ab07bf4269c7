"""In-process, sequential execution: breakpoints and profilers see the cell's code.

The cell runs in this thread, so the run's progress line is refreshed by a small helper thread
(:class:`Ticker`) that only calls ``tick`` (it reads the progress files and writes the line: it
touches neither torch nor the cell's state)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

from evalgrid.evaluation.packed import execute_pack
from evalgrid.executors.base import TICK_S, CellTask, ExecutorSettings, Report, Tick


class DebugExecutor:
    def __init__(self, settings: ExecutorSettings):
        self.settings = settings

    def run(self, tasks: Sequence[CellTask], report: Report, tick: Tick | None = None) -> None:
        torch.set_num_threads(self.settings.threads_per_worker)
        with Ticker(tick):
            for task in tasks:
                for summary in execute_pack(task.cells, task.context):
                    report(summary)


class Ticker:
    """Calls ``tick`` every ``interval_s`` from a daemon thread while the ``with`` block runs."""

    def __init__(self, tick: Tick | None, interval_s: float = TICK_S):
        self.tick, self.interval_s = tick, interval_s
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        if self.tick is not None:
            self.thread = threading.Thread(target=self._loop, name="evalgrid-progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the progress line must never stop a run
                pass
