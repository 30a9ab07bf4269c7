"""Each cell's state in a directory run on Slurm: its result file if it has one, else the
Slurm state of the task it was last sent to.

    done           its result is in DIR/cells/
    failed         its last attempt wrote a failure (DIR/failed/) and no task holds it now
    queued         its task is pending (or requeued, suspended)
    running        its task is running (a packed task runs its cells one after another)
    lost           its task ended without a result for it (cancelled, timed out, out of
                   memory, node failure, ...): the next ``evalgrid run`` resubmits it
    not submitted  no task was ever given it
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from evalgrid.executors.slurm.accounting import Accounting, TaskState
from evalgrid.executors.slurm.ledger import Assignment, latest_assignments, read_submissions
from evalgrid.store.layout import OutputDir

STATES = ("done", "failed", "running", "queued", "lost", "not submitted")
ACTIVE = frozenset({"queued", "running"})
UNKNOWN_GRACE_S = 600  # a task sacct does not know yet is taken as queued for this long after submission


@dataclass(frozen=True)
class CellState:
    state: str
    assignment: Assignment | None = None
    slurm_state: str = ""  # the task's, when it has one

    @property
    def job_id(self) -> str:
        return self.assignment.task.job_id if self.assignment else ""


def accounting_for(out: OutputDir) -> Accounting:
    return Accounting(out.slurm / "sacct.json")


def task_states(out: OutputDir, assignments: Iterable[Assignment], fresh: bool = False) -> dict[str, TaskState]:
    """One (throttled) sacct query for the jobs behind ``assignments``."""
    return accounting_for(out).states({a.job.job_id for a in assignments}, fresh=fresh)


def cell_states(out: OutputDir, cell_ids: Iterable[str], fresh: bool = False) -> dict[str, CellState]:
    cell_ids = list(cell_ids)
    done, failed = out.done_ids(), out.failed_ids()
    submissions = read_submissions(out)
    latest = latest_assignments(submissions) if submissions else {}
    waiting = {c: latest[c] for c in cell_ids if c not in done and c in latest}
    states = task_states(out, waiting.values(), fresh) if waiting else {}
    now = dt.datetime.now(dt.timezone.utc)
    result = {}
    for cell_id in cell_ids:
        if cell_id in done:
            result[cell_id] = CellState("done", latest.get(cell_id))
        elif cell_id in waiting:
            result[cell_id] = _from_task(out, cell_id, waiting[cell_id], states, now, cell_id in failed)
        else:
            result[cell_id] = CellState("failed" if cell_id in failed else "not submitted")
    return result


def _from_task(out: OutputDir, cell_id: str, assignment: Assignment, states: dict[str, TaskState],
               now: dt.datetime, has_failure: bool) -> CellState:
    task_state = states.get(assignment.task.job_id)
    if task_state is None:
        young = (now - assignment.submission.created_at).total_seconds() < UNKNOWN_GRACE_S
        return CellState("queued" if young else "lost", assignment, "UNKNOWN")
    if task_state.phase != "ended":
        return CellState(task_state.phase, assignment, task_state.state)
    if has_failure and _failed_since(out, cell_id, assignment):
        return CellState("failed", assignment, task_state.state)
    return CellState("lost", assignment, task_state.state)


def _failed_since(out: OutputDir, cell_id: str, assignment: Assignment) -> bool:
    """Whether the cell's failure was written by this task (not left by an earlier attempt)."""
    written = dt.datetime.fromtimestamp(out.failed_result(cell_id).stat().st_mtime, dt.timezone.utc)
    return written >= assignment.submission.created_at - dt.timedelta(seconds=1)


def active_cells(out: OutputDir, cell_ids: Iterable[str], fresh: bool = True) -> dict[str, CellState]:
    """The cells a queued or running task holds (none without a Slurm record: no sacct call)."""
    if not read_submissions(out):
        return {}
    return {c: s for c, s in cell_states(out, cell_ids, fresh).items() if s.state in ACTIVE}
