"""Job states from Slurm's accounting: one ``sacct`` call for all of a directory's jobs,
at most once per ``EVALGRID_SACCT_INTERVAL_S`` seconds (default 10; the answer is cached in
DIR/slurm/sacct.json), and Slurm's states grouped into what they mean for a cell."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evalgrid.errors import UserError
from evalgrid.store.atomic import atomic_write_text

INTERVAL_ENV = "EVALGRID_SACCT_INTERVAL_S"
DEFAULT_INTERVAL_S = 10.0

# Slurm job states (sacct's State column, first word) by what they mean for the cells of a task.
QUEUED_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
                           "CONFIGURING", "SPECIAL_EXIT", "STOPPED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"})
ENDED_STATES = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "PREEMPTED", "CANCELLED", "OUT_OF_MEMORY",
                          "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "REVOKED"})

_JOB_ID = re.compile(r"^(?P<job>\d+)(?:_(?P<task>\d+|\[[^\]]*\]))?(?:\+\d+)?$")


class NoAccounting(UserError):
    """Slurm's sacct is not on this machine."""


@dataclass(frozen=True)
class TaskState:
    state: str  # Slurm's, e.g. "RUNNING", "CANCELLED"
    exit_code: str = ""

    @property
    def phase(self) -> str:
        """queued, running or ended (an unknown state counts as queued: never resubmitted on a guess)."""
        if self.state in RUNNING_STATES:
            return "running"
        if self.state in ENDED_STATES:
            return "ended"
        return "queued"


def expand_job_id(text: str) -> list[str]:
    """sacct's JobID as task ids: '12' → ['12'], '12_3' → ['12_3'], '12_[0-2,5%4]' → ['12_0', ..., '12_5']."""
    match = _JOB_ID.match(text.strip())
    if match is None:
        return []
    job, task = match["job"], match["task"]
    if task is None:
        return [job]
    if not task.startswith("["):
        return [f"{job}_{task}"]
    ids = []
    for part in task[1:-1].split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit():
            ids += [f"{job}_{i}" for i in range(int(low), int(high or low) + 1)]
    return ids


def parse_sacct(output: str) -> dict[str, TaskState]:
    """``sacct -X -n -P --format=JobID,State,ExitCode`` output → task id → state."""
    states: dict[str, TaskState] = {}
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) < 2 or not fields[0]:
            continue
        state = TaskState(fields[1].split()[0] if fields[1].strip() else "UNKNOWN",
                          fields[2] if len(fields) > 2 else "")
        for task_id in expand_job_id(fields[0]):
            states[task_id] = state
    return states


class Accounting:
    """sacct for one output directory, throttled through a cache file."""

    calls = 0  # sacct invocations in this process (for tests and benchmarks)

    def __init__(self, cache: Path, interval_s: float | None = None):
        self.cache = cache
        self.interval_s = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)) if interval_s is None else interval_s

    def states(self, job_ids: Iterable[str], fresh: bool = False) -> dict[str, TaskState]:
        """Task id → state for every task of ``job_ids`` (arrays' ids) that Slurm knows."""
        wanted = sorted(set(job_ids), key=lambda j: (len(j), j))
        if not wanted:
            return {}
        cached = None if fresh else self._cached(wanted)
        if cached is not None:
            return cached
        states = parse_sacct(self._sacct(wanted))
        body = {"queried_at": time.time(), "job_ids": wanted,
                "states": {k: [v.state, v.exit_code] for k, v in states.items()}}
        atomic_write_text(self.cache, json.dumps(body) + "\n")
        return states

    def _cached(self, wanted: list[str]) -> dict[str, TaskState] | None:
        try:
            body = json.loads(self.cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if time.time() - body.get("queried_at", 0) > self.interval_s or not set(wanted) <= set(body["job_ids"]):
            return None
        return {k: TaskState(*v) for k, v in body["states"].items()}

    @staticmethod
    def _sacct(job_ids: list[str]) -> str:
        Accounting.calls += 1
        command = ["sacct", "-X", "-n", "-P", "--format=JobID,State,ExitCode", "-j", ",".join(job_ids)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise NoAccounting("sacct was not found: the Slurm jobs of this directory can only be followed from a "
                               "machine of their cluster (a login node).") from None
        except subprocess.TimeoutExpired:
            raise UserError("sacct did not answer within 120 s: Slurm's accounting (slurmdbd) is not responding; "
                            "try again later.") from None
        if done.returncode != 0:
            raise UserError(f"sacct failed (exit code {done.returncode}): {done.stderr.strip()} Job states come "
                            f"from Slurm's accounting: the cluster needs slurmdbd.")
        return done.stdout
