"""The executor interfaces: run cell tasks here and report each cell's summary as it ends
(:class:`Executor`), or hand them to a batch scheduler and return (:class:`Scheduler`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from evalgrid.grid.cell import CellConfig
from evalgrid.evaluation.context import CellContext, CellSummary
from evalgrid.store.layout import OutputDir

if TYPE_CHECKING:
    from evalgrid.grid.sections import SlurmOptions

Report = Callable[[CellSummary], None]
Tick = Callable[[], None]  # called about every TICK_S while cells run (the run's progress line looks inside them)

TICK_S = 1.0


@dataclass(frozen=True)
class CellTask:
    """One cell to run, or a pack of cells whose attacks run as lanes of one stacked attack
    (``[run] pack_cells``, evalgrid/evaluation/packed.py): ``cell`` and the ``packed_with`` it."""

    cell: CellConfig
    context: CellContext
    packed_with: tuple[CellConfig, ...] = ()

    @property
    def cells(self) -> tuple[CellConfig, ...]:
        return (self.cell, *self.packed_with)


def cell_tasks(cells: Sequence[CellConfig], context: CellContext, pack_cells: int) -> list[CellTask]:
    """One task per cell, or per pack of up to ``pack_cells`` cells that may run as lanes
    (:func:`evalgrid.evaluation.packing.pack_groups`)."""
    from evalgrid.evaluation.packing import pack_groups

    return [CellTask(pack[0], context, tuple(pack[1:])) for pack in pack_groups(cells, pack_cells)]


def _silent(line: str) -> None:
    pass


@dataclass(frozen=True)
class ExecutorSettings:
    workers: int
    threads_per_worker: int  # torch CPU threads in each worker
    slurm: SlurmOptions | None = None  # resolved resources, for the slurm executor
    # The local pool's cells_per_device: its workers pinned to these GPUs, cells_per_device each,
    # round-robin (evalgrid/executors/devices.py); (): pinned to none, as with cells_per_device = 1.
    devices: tuple[str, ...] = ()
    cells_per_device: int = 1
    # Signals the local pool forwards to its running workers, whose attacks then checkpoint and stop,
    # and after which it starts no cell (a Slurm task's SIGUSR2 and SIGTERM); (): Ctrl-C and SIGTERM stop the run.
    stop_signals: tuple[int, ...] = ()
    say: Callable[[str], None] = field(default=_silent, compare=False, repr=False)  # notes for the user


class Executor(Protocol):
    def run(self, tasks: Sequence[CellTask], report: Report, tick: Tick | None = None) -> None:
        """Run every task, calling ``report`` once per task from the launcher's thread, and
        ``tick`` about every ``TICK_S`` while cells run (from any one thread: the local pool's
        launcher, the debug executor's helper thread).

        Each task's result file is written where the cell ran; a KeyboardInterrupt stops
        the run and leaves no worker behind.
        """
        ...


@runtime_checkable
class Scheduler(Protocol):
    def check(self, job_name: str) -> None:
        """Raise a UserError when the scheduler would refuse the tasks (before anything is written)."""
        ...

    def submit(self, tasks: Sequence[CellTask], out: OutputDir, job_name: str, grid_file: Path | None = None
               ) -> Any:
        """Queue every task's cell and return what was submitted (recorded in ``out``) without
        waiting; the cells write their results in ``out`` as they end."""
        ...
