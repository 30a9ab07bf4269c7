"""Submitting cells to Slurm through submitit, then returning.

1. The resources are checked with ``sbatch --test-only`` before anything is written.
2. Stage models the cells need and the cache lacks are trained by their own array, one task
   per setup; a setup another task of this directory is still training is not submitted again.
3. Cells are packed ``cells_per_job`` to a task (cells of one setup together), tasks go out as
   arrays of at most ``max_array_size`` (the cluster's MaxArraySize by default), the arrays
   sharing ``array_parallelism``, each depending (afterany) on the stage trainings.
4. The ledger (DIR/slurm/submissions/) is rewritten after every sbatch.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from evalgrid.errors import UserError
from evalgrid.executors.base import CellTask, ExecutorSettings
from evalgrid.grid.sections import SlurmOptions
from evalgrid.executors.slurm.ledger import (JobRecord, Submission, TaskRecord, latest_assignments, new_submission,
                                   read_submissions, write_submission)
from evalgrid.executors.slurm.resources import submitit_parameters
from evalgrid.store.layout import OutputDir

DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize


class SlurmScheduler:
    """The ``slurm`` executor: submits and returns (see :meth:`submit`)."""

    def __init__(self, settings: ExecutorSettings):
        if settings.slurm is None:
            raise ValueError("the slurm executor needs resolved [slurm] options")
        self.options: SlurmOptions = settings.slurm

    def check(self, job_name: str) -> None:
        """Before anything is written: sbatch is here and accepts the resources."""
        _require_slurm()
        check_resources(self.options, job_name)

    def submit(self, tasks: Sequence[CellTask], out: OutputDir, job_name: str, grid_file: Path | None = None
               ) -> Submission | None:
        """Submit every task's cell (:meth:`check` first); None when there is nothing to submit."""
        if not tasks:
            return None
        options = self.options
        context = dataclasses.replace(tasks[0].context, train_stages=False)
        submission = new_submission(out, {**dataclasses.asdict(options), "sbatch": dict(options.sbatch),
                                          "grid_file": str(grid_file.resolve()) if grid_file else ""})
        executor = _executor(submission, options, job_name)
        try:
            cells = [cell for task in tasks for cell in task.cells]
            stage_jobs = self._submit_stages(executor, submission, out, cells, context, f"{job_name}-stages")
            self._submit_cells(executor, submission, out, cells, context, stage_jobs, job_name)
        except Exception as error:
            if not submission.jobs:
                shutil.rmtree(submission.folder, ignore_errors=True)
                raise UserError(f"sbatch refused the submission, nothing was submitted: {_reason(error)}") from None
            raise UserError(f"sbatch failed after {len(submission.jobs)} array(s) were submitted (recorded in "
                            f"{out.slurm}; `evalgrid run` again submits the rest): {_reason(error)}") from None
        return submission

    def _submit_stages(self, executor, submission: Submission, out: OutputDir, cells, context,
                       job_name: str) -> list[str]:
        """Submit the missing stage and prior trainings; the job ids cells must wait for."""
        from evalgrid.fl.stage import planned_trainings, stage_requests
        from evalgrid.priors.request import planned_priors, prior_request
        from evalgrid.executors.slurm.cells import task_states
        from evalgrid.executors.slurm.tasks import StageTraining

        requests = [r for cell in cells for r in stage_requests(cell)]
        missing = [request for request, cached in planned_trainings(requests, context.stages) if not cached]
        missing += [request for request, cached in planned_priors(list(map(prior_request, cells)), context.stages)
                    if not cached]
        if not missing:
            return []
        earlier = latest_assignments(read_submissions(out), kind="stages")
        held = {key: a for key, a in earlier.items() if key in {r.key() for r in missing}}
        states = task_states(out, held.values(), fresh=True) if held else {}
        waiting_on = {a.job.job_id for a in held.values()
                      if a.task.job_id in states and states[a.task.job_id].phase != "ended"}
        active_keys = {k for k, a in held.items() if a.job.job_id in waiting_on}
        by_setup: dict[str, list] = {}
        for request in missing:
            if request.key() not in active_keys:
                by_setup.setdefault(request.setup_key(), []).append(request)
        if by_setup:
            setups = list(by_setup.values())
            executor.update_parameters(job_name=job_name,
                                       array_parallelism=min(len(setups), self.options.array_parallelism))
            jobs = executor.map_array(StageTraining(context, self.options.cpus_per_task), setups)
            record = JobRecord(_array_id(jobs[0].job_id), "stages",
                               tuple(TaskRecord(job.job_id, tuple(r.key() for r in setup))
                                     for job, setup in zip(jobs, setups)))
            submission.jobs.append(record)
            write_submission(out, submission)
            waiting_on.add(record.job_id)
        return sorted(waiting_on)

    def _submit_cells(self, executor, submission: Submission, out: OutputDir, cells, context,
                      stage_jobs: list[str], job_name: str) -> None:
        from evalgrid.executors.slurm.tasks import CellPack

        options = self.options
        packs = pack_cells(cells, options.cells_per_job)
        arrays = chunk(packs, max_array_size(options))
        parallelism = max(1, options.array_parallelism // len(arrays))  # the arrays share the cap
        executor.update_parameters(job_name=job_name, array_parallelism=parallelism,
                                   dependency=f"afterany:{':'.join(stage_jobs)}" if stage_jobs else None)
        pack = CellPack(context, options.cpus_per_task, options.max_requeues, options.cells_per_device)
        for array in arrays:
            jobs = executor.map_array(pack, array)
            submission.jobs.append(JobRecord(_array_id(jobs[0].job_id), "cells",
                                             tuple(TaskRecord(job.job_id, tuple(c.cell_id for c in packed))
                                                   for job, packed in zip(jobs, array)),
                                             tuple(stage_jobs)))
            write_submission(out, submission)


def pack_cells(cells: Sequence, per_task: int) -> list[tuple]:
    """Packs of ``per_task`` cells, cells that share a dataset and a stage model side by side
    (stable otherwise), so a task loads each at most once."""
    from evalgrid.fl.stage import stage_requests

    def setup(cell) -> tuple:
        requests = stage_requests(cell)
        return repr(cell.dataset), cell.resolution, requests[0].setup_key() if requests else ""

    order = sorted(cells, key=setup)
    return [tuple(order[i:i + per_task]) for i in range(0, len(order), per_task)]


def chunk(items: Sequence, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def max_array_size(options: SlurmOptions) -> int:
    if options.max_array_size:
        return options.max_array_size
    try:
        shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return DEFAULT_MAX_ARRAY_SIZE
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", shown, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def check_resources(options: SlurmOptions, job_name: str) -> None:
    """``sbatch --test-only`` with the tasks' options: a wrong partition, account, QOS or GPU
    request is refused here, before anything is submitted or written."""
    from submitit.slurm.slurm import _make_sbatch_string

    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "test.sh"
        script.write_text(_make_sbatch_string(command="true", folder=folder,
                                              **submitit_parameters(options, job_name)))
        try:
            done = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise UserError("sbatch --test-only did not answer within 60 s: is slurmctld up?") from None
    if done.returncode != 0:
        profile = f" (profile {options.profile})" if options.profile else ""
        reason = " ".join((done.stderr.strip() or done.stdout.strip()).split())
        raise UserError(f"Slurm refuses the resources of the grid's [slurm] table{profile}; nothing was "
                        f"submitted. sbatch --test-only said: {reason}")


def _executor(submission: Submission, options: SlurmOptions, job_name: str):
    import submitit

    executor = submitit.SlurmExecutor(folder=submission.folder, max_num_timeout=options.max_requeues)
    executor.update_parameters(**submitit_parameters(options, job_name))
    return executor


def _require_slurm() -> None:
    if shutil.which("sbatch") is None:
        raise UserError("--executor slurm needs Slurm's sbatch on this machine (run evalgrid on the cluster's "
                        "login node); for a single-node test cluster see slurm/cluster/start.sh.")


def _array_id(job_id: str) -> str:
    return job_id.split("_")[0]


def _reason(error: Exception) -> str:
    return " ".join(str(error).split())[:2000]
