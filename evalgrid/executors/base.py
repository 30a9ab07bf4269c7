"""The executor interface: run cell tasks somewhere and report each cell's summary as it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from evalgrid.cell import CellConfig
from evalgrid.evaluate import CellContext, CellSummary

Report = Callable[[CellSummary], None]


@dataclass(frozen=True)
class CellTask:
    cell: CellConfig
    context: CellContext


@dataclass(frozen=True)
class ExecutorSettings:
    workers: int
    threads_per_worker: int  # torch CPU threads in each worker


class Executor(Protocol):
    def run(self, tasks: Sequence[CellTask], report: Report) -> None:
        """Run every task, calling ``report`` once per task from the launcher's thread.

        Each task's result file is written where the cell ran; a KeyboardInterrupt stops
        the run and leaves no worker behind.
        """
        ...
