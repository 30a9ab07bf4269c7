"""What was submitted from an output directory: DIR/slurm/submissions/NNNN.json.

One file per ``evalgrid run --executor slurm``, rewritten atomically after every ``sbatch``
so that a job is on record a moment after Slurm accepted it. Each task (a Slurm job id, or
``ARRAY_TASK`` inside an array) lists what it runs: cell ids, or stage-training keys.
``status``, ``cancel`` and the next ``run`` read these files from any shell.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evalgrid.store.atomic import atomic_write_text
from evalgrid.store.layout import OutputDir

LEDGER_SCHEMA = 1


@dataclass(frozen=True)
class TaskRecord:
    job_id: str  # "1234" or "1234_5" (array task)
    items: tuple[str, ...]  # cell ids, or stage keys for a stage-training task


@dataclass(frozen=True)
class JobRecord:
    """One sbatch: an array (or a single job) of tasks of one kind."""

    job_id: str  # the id sbatch printed (the array's id)
    kind: str  # "cells" or "stages"
    tasks: tuple[TaskRecord, ...]
    depends_on: tuple[str, ...] = ()


@dataclass
class Submission:
    number: int
    created: str  # ISO time, UTC
    folder: str  # submitit's folder: job scripts, pickles, stdout/stderr per task
    resources: dict
    jobs: list[JobRecord] = field(default_factory=list)

    @property
    def created_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.created)


def submissions_dir(out: OutputDir) -> Path:
    return out.slurm / "submissions"


def next_number(out: OutputDir) -> int:
    return max((s.number for s in read_submissions(out)), default=0) + 1


def new_submission(out: OutputDir, resources: dict) -> Submission:
    number = next_number(out)
    folder = out.slurm / "jobs" / f"{number:04d}"
    return Submission(number, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      str(folder.resolve()), resources)


def write_submission(out: OutputDir, submission: Submission) -> None:
    body = {"schema": LEDGER_SCHEMA, **asdict(submission)}
    atomic_write_text(submissions_dir(out) / f"{submission.number:04d}.json", json.dumps(body, indent=1) + "\n")


def read_submissions(out: OutputDir) -> list[Submission]:
    folder = submissions_dir(out)
    if not folder.is_dir():
        return []
    submissions = []
    for path in sorted(folder.glob("[0-9]*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        jobs = [JobRecord(j["job_id"], j["kind"], tuple(TaskRecord(t["job_id"], tuple(t["items"])) for t in j["tasks"]),
                          tuple(j.get("depends_on", ()))) for j in body["jobs"]]
        submissions.append(Submission(body["number"], body["created"], body["folder"], body["resources"], jobs))
    return submissions


@dataclass(frozen=True)
class Assignment:
    """The latest task a cell (or stage) was sent to."""

    task: TaskRecord
    job: JobRecord
    submission: Submission


def latest_assignments(submissions: list[Submission], kind: str = "cells") -> dict[str, Assignment]:
    """Item id → its latest task of ``kind`` (later submissions win)."""
    latest: dict[str, Assignment] = {}
    for submission in submissions:
        for job in submission.jobs:
            if job.kind != kind:
                continue
            for task in job.tasks:
                for item in task.items:
                    latest[item] = Assignment(task, job, submission)
    return latest
