"""Following a directory's Slurm tasks from any shell: counts of cell states, one cell's
story (job, Slurm state, its task's stdout/stderr), waiting with a progress line (with the
running cells' trial, iteration and loss from their progress files), cancelling."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path

from evalgrid.errors import UserError
from evalgrid.launch.progress import (BAR_WIDTH, RunningLog, ellipsis_for, format_duration, running_line,
                                      running_suffix, terminal_columns)
from evalgrid.executors.slurm.cells import ACTIVE, STATES, CellState, cell_states, task_states
from evalgrid.executors.slurm.ledger import Submission, latest_assignments, read_submissions
from evalgrid.store.cell_progress import CellProgress, read_running, this_host, utc_now
from evalgrid.store.layout import OutputDir

TAIL_LINES = 20
REFRESH_S = 2.0  # the line's refresh (Slurm itself is asked at most every sacct interval: accounting.py)


def describe_submission(submission: Submission) -> str:
    lines = [f"submission {submission.number} ({submission.folder}):"]
    for job in submission.jobs:
        items = sum(len(t.items) for t in job.tasks)
        what = "trainings (stage models, priors)" if job.kind == "stages" else "cells"
        after = f", after {','.join(job.depends_on)}" if job.depends_on else ""
        lines.append(f"  job {job.job_id}: {items} {what} in {len(job.tasks)} task(s){after}")
    return "\n".join(lines)


def count_states(states: dict[str, CellState]) -> dict[str, int]:
    counts = collections.Counter(s.state for s in states.values())
    return {state: counts.get(state, 0) for state in STATES}


def counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no cells"


def wait_for_cells(out: OutputDir, cell_ids: list[str], stream=None) -> tuple[dict[str, int], float]:
    """Poll (sacct throttled, cached between polls) until no cell is queued or running; the
    running cells' progress files show on the line (off a terminal: a line per long cell)."""
    stream = stream or sys.stderr
    started = time.monotonic()
    interactive = stream.isatty()
    last = ""
    running_log = RunningLog()
    while True:
        states = cell_states(out, cell_ids)
        counts = count_states(states)
        running = _running_cells(out, states)
        ended = sum(n for state, n in counts.items() if state not in ACTIVE and state != "not submitted")
        total = len(cell_ids) - counts["not submitted"]
        filled = round(BAR_WIDTH * ended / max(total, 1))
        line = (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {counts_line(counts)} "
                f"({format_duration(time.monotonic() - started)})")
        if interactive:
            shown = f"{line}{running_suffix(running, ellipsis_for(stream))}"[:terminal_columns(stream) - 1]
            stream.write(f"\r{shown}\033[K")
        else:
            if line.split(" (")[0] != last:
                stream.write(line + "\n")
            for cell in running_log.due(running):
                stream.write(running_line(cell) + "\n")
        last = line.split(" (")[0]
        stream.flush()
        if not any(counts[state] for state in ACTIVE):
            if interactive:
                stream.write("\n")
            return counts, time.monotonic() - started
        time.sleep(_poll_interval(out))


def _poll_interval(out: OutputDir) -> float:
    from evalgrid.executors.slurm.cells import accounting_for

    return max(1.0, min(REFRESH_S, accounting_for(out).interval_s))


def _running_cells(out: OutputDir, states: dict[str, CellState]) -> list[CellProgress]:
    """The live progress files of the cells whose tasks run (a packed task runs one at a time)."""
    running = [cell_id for cell_id, state in states.items() if state.state == "running"]
    return read_running(out, running).live(utc_now(), this_host()) if running else []


def cell_story(out: OutputDir, state: CellState, cell_id: str, fresh: bool = False) -> str:
    """What ``evalgrid status DIR --cell ID`` prints."""
    lines = [f"cell {cell_id}: {state.state}"]
    if state.assignment is not None:
        a = state.assignment
        slurm_state = state.slurm_state or getattr(task_states(out, [a], fresh).get(a.task.job_id), "state", "")
        lines.append(f"  slurm job {a.task.job_id} ({slurm_state or 'not known to sacct'}), submission "
                     f"{a.submission.number}, task of {len(a.task.items)} cell(s)")
        for label, path in task_logs(a.submission.folder, a.task.job_id).items():
            lines.append(f"  {label}: {path}")
            lines += [f"    {line}" for line in tail(path)]
    for label, path in (("result", out.done_result(cell_id)), ("failure", out.failed_result(cell_id)),
                        ("log", out.log(cell_id)), ("checkpoint", out.checkpoint(cell_id))):
        if path.is_file():
            lines.append(f"  {label}: {path}")
    return "\n".join(lines)


def task_logs(folder: str, job_id: str) -> dict[str, Path]:
    from submitit.core.utils import JobPaths

    paths = JobPaths(folder, job_id=job_id, task_id=0)
    return {"stdout": paths.stdout, "stderr": paths.stderr}


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    if not path.is_file():
        return ["(not written yet)"]
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 64_000))
        text = handle.read().decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]


def cancel(out: OutputDir) -> tuple[int, list[str]]:
    """scancel every queued or running task of ``out`` (one call, by array): how many tasks, and
    the arrays' job ids."""
    submissions = read_submissions(out)
    if not submissions:
        raise UserError(f"{out.root}: nothing was submitted to Slurm from this directory.")
    assignments = [a for kind in ("stages", "cells") for a in latest_assignments(submissions, kind).values()]
    states = task_states(out, assignments, fresh=True)
    active = {a.task.job_id: a.job.job_id for a in assignments
              if a.task.job_id in states and states[a.task.job_id].phase != "ended"}
    arrays = sorted(set(active.values()), key=int)  # cancelling an array leaves its ended tasks as they are
    if arrays:
        done = subprocess.run(["scancel", *arrays], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise UserError(f"scancel failed (exit code {done.returncode}): {done.stderr.strip()}")
    return len(active), arrays
