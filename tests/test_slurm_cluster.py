"""evalgrid on a real single-node Slurm (slurm/cluster/start.sh): arrays and packing, stage
trainings as their own jobs, submit-and-exit with status from sacct, cancel and retry,
preemption and time limits that resume the attack from its checkpoint, and a controller
restarted under queued jobs. Every cell must end with exactly one result.

The cluster starts once per module when it is not up already (root on Debian; the tests
skip with the reason elsewhere) and is stopped afterwards if this module started it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evalgrid
from evalgrid.executors.slurm.ledger import read_submissions
from evalgrid.store.layout import OutputDir

CLUSTER = Path(__file__).resolve().parents[1] / "slurm" / "cluster"
pytestmark = pytest.mark.slow

GRID = """
name = "onslurm"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["ig"]
batch_size = [1]
seed = {seeds}

[attacks.ig]
iterations = {iterations}

[slurm]
profile = "local-test"
cells_per_job = {per_task}
{slurm}
"""


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    shown = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return shown.returncode == 0 and shown.stdout.strip().split("\n")[0] in {"idle", "mixed", "allocated"}


@pytest.fixture(scope="module")
def cluster():
    """A running single-node Slurm; skips (with why) where one cannot be started."""
    if _cluster_answers():
        yield
        return
    if os.geteuid() != 0 or not Path("/etc/debian_version").is_file():
        pytest.skip("no Slurm cluster: slurm/cluster/start.sh needs root on Debian to start one")
    started = subprocess.run(["bash", str(CLUSTER / "start.sh")], capture_output=True, text=True, timeout=900)
    if started.returncode == 3:
        pytest.skip(f"no Slurm cluster: {started.stderr.strip()}")
    assert started.returncode == 0, f"slurm/cluster/start.sh failed:\n{started.stdout}\n{started.stderr}"
    yield
    subprocess.run(["bash", str(CLUSTER / "stop.sh")], capture_output=True, timeout=300)


@pytest.fixture
def env(monkeypatch):
    """Environment for the evalgrid commands: sacct asked at most every second."""
    monkeypatch.setenv("EVALGRID_SACCT_INTERVAL_S", "1")
    return {**os.environ, "EVALGRID_SACCT_INTERVAL_S": "1"}


# The CLI in this process, then whether it imported torch (as the last line of stdout).
WITHOUT_TORCH = ("import sys\nfrom evalgrid.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as end:\n"
                 "    code = end.code\nprint('torch imported' if 'torch' in sys.modules else 'torch not imported')\n"
                 "sys.exit(code)\n")


def evalgrid_cli(env, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalgrid", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def grid_text(seeds=(0, 1, 2, 3, 4), iterations=20, per_task=2, slurm="", extra=""):
    return GRID.format(seeds=list(seeds), iterations=iterations, per_task=per_task, slurm=slurm) + extra


def wait_until(condition, timeout_s=180, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def one_result_each(out: Path, count: int) -> dict:
    """Every cell has exactly one result file; the rows by cell id."""
    assert len(list((out / "cells").glob("*.parquet"))) + len(list((out / "failed").glob("*.parquet"))) == count
    frame = evalgrid.load(out)
    assert frame["cell_id"].is_unique and len(frame) == count
    return frame.set_index("cell_id")


def task_of(out: Path, cell_id: str) -> str:
    for submission in read_submissions(OutputDir(out)):
        for job in submission.jobs:
            for task in job.tasks:
                if cell_id in task.items:
                    return task.job_id
    raise AssertionError(f"cell {cell_id} was never submitted")


def squeue_state(job_id: str) -> str:
    shown = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return shown.stdout.strip()


def test_a_grid_runs_as_arrays_of_packed_tasks_after_its_stage_training(cluster, env, write_grid, tmp_path,
                                                                         monkeypatch):
    stage = '\nstage = ["initial", { name = "fedavg", round = 1 }]\n'
    text = grid_text(seeds=(0, 1, 2), slurm="max_array_size = 2").replace("seed = [0, 1, 2]",
                                                                         "seed = [0, 1, 2]" + stage)
    text += ("\n[stages.fedavg]\nclients = 4\nclients_per_round = 2\nlocal_epochs = 1\nsamples_per_client = 8\n"
             "batch_size = 4\nlr = 0.1\n")
    out = tmp_path / "out"
    started = time.monotonic()
    submitted = evalgrid_cli(env, "run", write_grid(text), "--out", out, "--executor", "slurm")
    submit_s = time.monotonic() - started
    assert submitted.returncode == 0, submitted.stderr
    assert "follow with: evalgrid status" in submitted.stderr and submit_s < 60

    [submission] = read_submissions(OutputDir(out))
    kinds = [job.kind for job in submission.jobs]
    assert kinds == ["stages", "cells", "cells"]  # 6 cells, 2 per task: 3 tasks in arrays of at most 2
    stages, *arrays = submission.jobs
    assert len(stages.tasks) == 3  # one FedAvg setup per seed, each trained by one task
    assert [len(a.tasks) for a in arrays] == [2, 1]
    assert all(a.depends_on == (stages.job_id,) for a in arrays)
    assert all(len(t.items) <= 2 for a in arrays for t in a.tasks)

    waited = evalgrid_cli(env, "run", write_grid(text), "--out", out, "--executor", "slurm", "--wait",
                          "--alongside")
    assert waited.returncode == 0, waited.stderr
    frame = one_result_each(out, 6)
    assert sorted(frame["stage_round"]) == [0, 0, 0, 1, 1, 1]
    trained = [p for p in (out / "stages").iterdir() if p.is_dir()]
    assert len(trained) == 3 and all(len(list(p.glob("round-1.pt"))) == 1 for p in trained)
    status = evalgrid_cli(env, "status", out)
    assert "done          6" in status.stdout
    some = frame.index[0]
    story = evalgrid_cli(env, "status", out, "--cell", some)
    assert task_of(out, some) in story.stdout and "COMPLETED" in story.stdout and "Job completed" in story.stdout

    # one sacct call per refresh, its answer reused meanwhile; a cell whose result vanished is lost
    from evalgrid.executors.slurm.accounting import Accounting
    from evalgrid.executors.slurm.cells import cell_states

    OutputDir(out).done_result(some).unlink()
    monkeypatch.setenv("EVALGRID_SACCT_INTERVAL_S", "60")
    before = Accounting.calls
    first = cell_states(OutputDir(out), list(frame.index), fresh=True)
    assert cell_states(OutputDir(out), list(frame.index)) == first and Accounting.calls - before == 1
    assert first[some].state == "lost" and first[some].slurm_state == "COMPLETED"
    again = evalgrid_cli(env, "run", write_grid(text), "--out", out, "--executor", "slurm", "--wait")
    assert again.returncode == 0 and "1 to submit" in again.stderr
    assert [j.kind for j in read_submissions(OutputDir(out))[-1].jobs] == ["cells"]  # its stage is cached
    one_result_each(out, 6)


def test_a_cell_that_raises_fails_alone_and_the_rest_of_its_pack_runs(cluster, env, write_grid, tmp_path):
    # IG's step size 1e300 overflows float32 at its first Adam step: a failure only the run finds
    text = grid_text(seeds=(0, 1)).replace('attack = ["ig"]', 'attack = ["ig", { name = "ig", lr = 1e300 }]')
    out = tmp_path / "out"
    waited = evalgrid_cli(env, "run", write_grid(text), "--out", out, "--executor", "slurm", "--wait")
    assert waited.returncode == 1 and "2 failed" in waited.stderr
    frame = evalgrid.load(out)
    assert sorted(frame["status"]) == ["done", "done", "failed", "failed"]
    assert (frame[frame["status"] == "failed"]["attack"].astype(str) == "ig(lr=1e+300)").all()
    assert "failed        2" in evalgrid_cli(env, "status", out).stdout


def test_a_second_run_refuses_while_tasks_hold_its_cells_and_alongside_submits_nothing_twice(
        cluster, env, write_grid, tmp_path):
    grid = write_grid(grid_text(seeds=(0, 1, 2), iterations=600, per_task=1, slurm="array_parallelism = 1"))
    out = tmp_path / "out"
    assert evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm").returncode == 0
    refused = evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm")
    assert refused.returncode == 2
    assert "queued or running on Slurm" in refused.stderr and "--alongside" in refused.stderr
    local = evalgrid_cli(env, "run", grid, "--out", out, "--executor", "local")
    assert local.returncode == 2  # a local run would duplicate the queued cells too
    alongside = evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm", "--alongside", "--wait")
    assert alongside.returncode == 0 and "nothing to submit" in alongside.stderr
    assert len(read_submissions(OutputDir(out))) == 1
    one_result_each(out, 3)


def test_a_cancelled_cell_is_lost_then_retried_from_its_checkpoint(cluster, env, write_grid, tmp_path):
    out = tmp_path / "out"
    assert evalgrid_cli(env, "run", write_grid(grid_text(seeds=(0,), iterations=2500, per_task=1)), "--out", out,
                        "--executor", "slurm").returncode == 0
    [cell_id] = [c for s in read_submissions(OutputDir(out)) for j in s.jobs for t in j.tasks for c in t.items]
    job = task_of(out, cell_id)
    wait_until(lambda: f"cell {cell_id} (1/1 of this task) starting" in _log(out, job), what="the cell to start")
    # into its attack (~9 s on 2 cores): status, on the login node, shows its iteration and loss from the node's file
    wait_until(lambda: re.search(rf"{cell_id} trial 1/1 it [1-9][0-9]*/2500 loss [0-9.]+e[-+][0-9]+, updated",
                                 evalgrid_cli(env, "status", out).stdout), what="status to show the attack's progress")
    cancelled = evalgrid_cli(env, "cancel", out)
    assert cancelled.returncode == 0 and "cancelled 1 task(s) of job(s) " + job.split("_")[0] in cancelled.stderr
    # the cell's own line (every status lists a "lost" count): sacct may take a moment to record the cancel
    wait_until(lambda: f"{cell_id} lost" in evalgrid_cli(env, "status", out).stdout, what="the cell to show as lost")
    assert "CANCELLED" in evalgrid_cli(env, "status", out).stdout
    assert OutputDir(out).checkpoint(cell_id).is_file()  # SIGTERM: the attack saved its state first
    assert not OutputDir(out).cell_progress(cell_id).exists()  # and its progress file went as it stopped
    # on the login node, resubmitting and following the jobs import no torch (the tasks do, on the nodes)
    retried = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "retry", str(out), "--wait"], capture_output=True,
                             text=True, timeout=600, env=env)
    assert retried.returncode == 0 and retried.stdout.splitlines()[-1] == "torch not imported", retried.stderr
    row = one_result_each(out, 1).loc[cell_id]
    assert len(row["resumed_at_iteration"]) == 1 and 0 < row["resumed_at_iteration"][0] < 2500
    assert row["attack_iterations"] == 2500


def test_a_requeued_pack_skips_its_done_cells_and_resumes_the_attack_it_was_running(
        cluster, env, write_grid, tmp_path):
    short_then_long = 'attack = [{ name = "ig", iterations = 100 }, "ig"]'  # one pack: a quick cell, then a long one
    grid = write_grid(grid_text(seeds=(0,), iterations=2500, per_task=2).replace('attack = ["ig"]', short_then_long))
    out = tmp_path / "out"
    assert evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm").returncode == 0
    [task] = [t for s in read_submissions(OutputDir(out)) for j in s.jobs for t in j.tasks]
    first, second = task.items
    wait_until(lambda: f"cell {second} (2/2 of this task) starting" in _log(out, task.job_id),
               what="the pack's second cell")
    first_written = OutputDir(out).done_result(first).stat().st_mtime_ns
    time.sleep(2)  # into its attack (~9 s on 2 cores)
    subprocess.run(["scontrol", "requeue", task.job_id], check=True)
    wait_until(lambda: OutputDir(out).done_result(second).is_file(), timeout_s=300, what="the requeued task")
    frame = one_result_each(out, 2)
    assert OutputDir(out).done_result(first).stat().st_mtime_ns == first_written  # not run twice
    resumed = frame.loc[second, "resumed_at_iteration"]
    assert len(resumed) == 1 and 0 < resumed[0] < 2500
    assert list(frame.loc[first, "resumed_at_iteration"]) == []
    log = _log(out, task.job_id)
    assert "SIGTERM received" in log

    # the resumed cell alone, uninterrupted, here, with the task's one thread: the same cell id, the same numbers
    alone = write_grid(grid_text(seeds=(0,), iterations=2500, per_task=2), name="alone.toml")
    straight = tmp_path / "straight"
    assert evalgrid_cli(env, "run", alone, "--out", straight, "--executor", "debug", "--threads", "1").returncode == 0
    reference = evalgrid.load(straight).set_index("cell_id")
    assert list(reference.index) == [second]
    assert frame.loc[second, "final_loss"] == reference.loc[second, "final_loss"]
    assert frame.loc[second, "psnr"] == reference.loc[second, "psnr"]


def test_a_task_warned_of_its_time_limit_checkpoints_and_submitit_requeues_it(cluster, env, write_grid, tmp_path):
    """Slurm sends SIGUSR2 signal_delay_s before the time limit (--signal=USR2@delay, checked in
    test_slurm_options); here it is sent at a chosen moment, mid-attack, with scancel."""
    grid = write_grid(grid_text(seeds=(0,), iterations=2500, per_task=1))
    out = tmp_path / "out"
    assert evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm").returncode == 0
    [task] = [t for s in read_submissions(OutputDir(out)) for j in s.jobs for t in j.tasks]
    [cell_id] = task.items
    wait_until(lambda: f"cell {cell_id} (1/1 of this task) starting" in _log(out, task.job_id), what="the cell")
    time.sleep(2)
    subprocess.run(["scancel", "--signal=USR2", task.job_id], check=True)
    wait_until(lambda: OutputDir(out).done_result(cell_id).is_file(), timeout_s=300, what="the requeued cell")
    row = one_result_each(out, 1).loc[cell_id]
    assert len(row["resumed_at_iteration"]) == 1 and 0 < row["resumed_at_iteration"][0] < 2500
    log = _log(out, task.job_id) + _log(out, task.job_id, "stderr")
    assert "SIGUSR2 received" in log and "Requeued job" in log


def test_jobs_queued_when_the_controller_restarts_still_run_once_each(cluster, env, write_grid, tmp_path):
    grid = write_grid(grid_text(seeds=(0, 1, 2, 3), iterations=100, per_task=1, slurm="array_parallelism = 1"))
    out = tmp_path / "out"
    assert evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm").returncode == 0
    restarted = subprocess.run(["bash", str(CLUSTER / "restart-controller.sh")], capture_output=True, text=True,
                               timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    waited = evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm", "--wait", "--alongside")
    assert waited.returncode == 0, waited.stderr
    one_result_each(out, 4)
    assert len(read_submissions(OutputDir(out))) == 1  # nothing was submitted twice


def _log(out: Path, job_id: str, stream: str = "stdout") -> str:
    """The task's stdout or stderr (submitit's files, one per task, appended across requeues)."""
    from evalgrid.executors.slurm.follow import task_logs

    submission = read_submissions(OutputDir(out))[0]
    path = task_logs(submission.folder, job_id)[stream]
    return path.read_text(errors="replace") if path.is_file() else ""


def test_a_prior_is_trained_by_its_own_job_that_the_cells_wait_for(cluster, env, write_grid, tmp_path):
    from test_priors import GRID as PRIOR_GRID

    from evalgrid.priors.cache import prior_trainings

    text = PRIOR_GRID + '\n[slurm]\nprofile = "local-test"\ncells_per_job = 2\n'
    out = tmp_path / "out"
    submitted = evalgrid_cli(env, "run", write_grid(text), "--out", out, "--executor", "slurm")
    assert submitted.returncode == 0, submitted.stderr
    [submission] = read_submissions(OutputDir(out))
    training, cells = submission.jobs
    assert (training.kind, cells.kind) == ("stages", "cells") and cells.depends_on == (training.job_id,)
    [task] = training.tasks
    assert len(task.items) == 1 and task.items[0].startswith("priors/")
    waited = evalgrid_cli(env, "run", write_grid(text), "--out", out, "--executor", "slurm", "--wait", "--alongside")
    assert waited.returncode == 0, waited.stderr
    frame = one_result_each(out, 2)
    assert (frame["status"] == "done").all() and len(prior_trainings(out / "stages")) == 1
    assert frame["prior_key"].tolist().count(task.items[0]) == 1
