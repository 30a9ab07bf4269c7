"""In-process, sequential execution: breakpoints and profilers see the cell's code."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evalgrid.evaluation.pipeline import execute_cell
from evalgrid.executors.base import CellTask, ExecutorSettings, Report


class DebugExecutor:
    def __init__(self, settings: ExecutorSettings):
        self.settings = settings

    def run(self, tasks: Sequence[CellTask], report: Report) -> None:
        torch.set_num_threads(self.settings.threads_per_worker)
        for task in tasks:
            report(execute_cell(task.cell, task.context))
