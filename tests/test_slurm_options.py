"""The Slurm side without a cluster: the sbatch options a grid and a profile become, profile
look-up and errors, sacct's output read into cell states, packing and array chunking."""

from __future__ import annotations

import json
import time

import pytest

from evalgrid.errors import UserError
from evalgrid.grid import load_grid
from evalgrid.grid.sections import SlurmOptions
from evalgrid.executors.slurm.accounting import TaskState, expand_job_id, parse_sacct
from evalgrid.executors.slurm.resources import load_profile, resolve_resources, submitit_parameters

GRID = """
name = "slurmy"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["idlg"]
batch_size = [1]
seed = [0, 1, 2, 3, 4]

[attacks.idlg]
iterations = 2
"""


def sbatch_lines(options: SlurmOptions, tmp_path, tasks: int | None = None) -> list[str]:
    from submitit.slurm.slurm import _make_sbatch_string

    script = _make_sbatch_string(command="python -m x", folder=tmp_path, map_count=tasks,
                                 **submitit_parameters(options, "evalgrid-test"))
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def test_every_resource_becomes_its_sbatch_option(tmp_path):
    options = SlurmOptions(partition="gpu", account="lab", qos="high", constraint="a100", gpus_per_task=2,
                           cpus_per_task=8, mem_gb=32, time_min=90, signal_delay_s=180, array_parallelism=10,
                           sbatch=(("mail-type", "END"), ("exclusive", "")))
    lines = sbatch_lines(options, tmp_path, tasks=50)
    for expected in ("--partition=gpu", "--account=lab", "--qos=high", "--constraint=a100", "--gpus-per-task=2",
                     "--cpus-per-task=8", "--mem=32GB", "--time=90", "--signal=USR2@180", "--array=0-49%10",
                     "--mail-type=END", "--job-name=evalgrid-test"):
        assert f"#SBATCH {expected}" in lines, expected
    assert "#SBATCH --exclusive" in lines


def test_unset_resources_are_left_to_the_cluster(tmp_path):
    lines = " ".join(sbatch_lines(SlurmOptions(gpus_per_task=0, mem_gb=1.5), tmp_path))
    for absent in ("--partition", "--account", "--qos", "--constraint", "--gpus-per-task", "--array"):
        assert absent not in lines
    assert "--mem=1536MB" in lines


def test_grid_slurm_keys_override_the_profile(tmp_path, monkeypatch, write_grid):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "lab.toml").write_text('partition = "gpu"\naccount = "lab"\ntime_min = 30\n'
                                       '[sbatch]\nmail-type = "END"\n')
    monkeypatch.setenv("EVALGRID_SLURM_PROFILES", str(profiles))
    grid = load_grid(write_grid(GRID + '\n[slurm]\nprofile = "lab"\ntime_min = 240\n[slurm.sbatch]\nnice = 5\n'))
    resolved = resolve_resources(grid.slurm, grid.resolved["slurm"], None, grid.base_dir)
    assert (resolved.partition, resolved.account, resolved.time_min) == ("gpu", "lab", 240)
    assert dict(resolved.sbatch) == {"mail-type": "END", "nice": "5"}
    assert resolve_resources(grid.slurm, grid.resolved["slurm"], str(profiles / "lab.toml")).partition == "gpu"


def test_an_unknown_profile_lists_the_ones_there_are(tmp_path, monkeypatch):
    (tmp_path / "lab.toml").write_text('partition = "gpu"\n')
    monkeypatch.setenv("EVALGRID_SLURM_PROFILES", str(tmp_path))
    with pytest.raises(UserError, match=r"unknown Slurm profile 'labb'.*lab"):
        load_profile("labb")


def test_a_profile_with_a_misspelled_key_names_the_file_and_the_valid_keys(tmp_path, monkeypatch):
    (tmp_path / "lab.toml").write_text('partiton = "gpu"\n')
    monkeypatch.setenv("EVALGRID_SLURM_PROFILES", str(tmp_path))
    with pytest.raises(UserError) as error:
        load_profile("lab")
    message = str(error.value)
    assert str(tmp_path / "lab.toml") in message and "partiton" in message and "Did you mean 'partition'" in message
    assert "cells_per_job" in message


@pytest.mark.parametrize("table, key, words", [
    ('[slurm]\ngpus_per_tsk = 1\n', "slurm.gpus_per_tsk", "Did you mean 'gpus_per_task'"),
    ('[slurm]\ncells_per_job = 0\n', "slurm.cells_per_job", "must be >= 1"),
    ('[slurm.sbatch]\ntime = "10"\n', "slurm.sbatch.time", "time_min"),
    ('[slurm.sbatch]\n"--mail" = "x"\n', "slurm.sbatch.--mail", "without the dashes"),
])
def test_a_bad_slurm_table_is_a_clear_error_with_exit_code_2(cli, write_grid, table, key, words, tmp_path):
    result = cli("run", write_grid(GRID + table), "--out", tmp_path / "out", "--executor", "slurm")
    assert result.exit_code == 2
    assert key in result.output and words in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_the_cluster_profiles_in_the_repository_are_valid():
    from evalgrid.executors.slurm.resources import available_profiles

    names = available_profiles()
    assert "local-test" in names
    for name in names:
        load_profile(name)


@pytest.mark.parametrize("text, ids", [
    ("12", ["12"]), ("12_3", ["12_3"]), ("12_[0-2]", ["12_0", "12_1", "12_2"]),
    ("12_[1,4-5%2]", ["12_1", "12_4", "12_5"]), ("12.batch", []), ("12+1", ["12"]),
])
def test_sacct_job_ids_expand_to_task_ids(text, ids):
    assert expand_job_id(text) == ids


def test_sacct_output_maps_slurm_states_to_phases():
    states = parse_sacct("7_0|COMPLETED|0:0\n7_1|CANCELLED by 0|0:15\n7_[2-3%1]|PENDING|0:0\n"
                         "7_4|RUNNING|0:0\n7_5|OUT_OF_MEMORY|0:125\n8|NODE_FAIL|1:0\n9|PREEMPTED|0:0\n")
    assert {k: v.phase for k, v in states.items()} == {
        "7_0": "ended", "7_1": "ended", "7_2": "queued", "7_3": "queued", "7_4": "running", "7_5": "ended",
        "8": "ended", "9": "ended"}
    assert states["7_1"].state == "CANCELLED"
    assert TaskState("REQUEUED").phase == "queued" and TaskState("COMPLETING").phase == "running"


def test_cell_states_come_from_results_first_then_the_task(tmp_path, write_grid):
    """Done beats any task state; a task that ended leaves its cells without results lost,
    or failed when this attempt wrote the failure."""
    from evalgrid.evaluation.context import CellContext
    from evalgrid.evaluation.pipeline import record_failure
    from evalgrid.launch.provenance import current_provenance
    from evalgrid.executors.slurm.cells import cell_states
    from evalgrid.executors.slurm.ledger import JobRecord, TaskRecord, new_submission, write_submission
    from evalgrid.store.layout import OutputDir

    grid = load_grid(write_grid(GRID))
    ids = [c.cell_id for c in grid.cells]
    out = OutputDir(tmp_path / "out")
    submission = new_submission(out, {})
    submission.jobs.append(JobRecord("7", "cells", tuple(TaskRecord(f"7_{i}", (ids[i],)) for i in range(4))))
    write_submission(out, submission)
    context = CellContext(out_root=out.root, grid_name="g", data_root=None, device="cpu",
                          provenance=current_provenance())
    record_failure(grid.cells[1], context, "RuntimeError", "boom")
    (out.cells).mkdir(parents=True, exist_ok=True)
    (out.done_result(ids[0])).write_bytes(b"")  # done: only the name counts
    cache = {"queried_at": time.time(), "job_ids": ["7"],
             "states": {"7_0": ["COMPLETED", "0:0"], "7_1": ["COMPLETED", "0:0"], "7_2": ["TIMEOUT", "0:0"],
                        "7_3": ["RUNNING", "0:0"]}}
    (out.slurm / "sacct.json").write_text(json.dumps(cache))
    states = cell_states(out, ids)
    assert [states[i].state for i in ids] == ["done", "failed", "lost", "running", "not submitted"]
    assert states[ids[2]].slurm_state == "TIMEOUT" and states[ids[2]].job_id == "7_2"


def test_packs_keep_cells_of_one_setup_together_and_arrays_respect_the_size_limit(write_grid):
    from evalgrid.executors.slurm.submit import chunk, pack_cells

    grid = load_grid(write_grid(GRID))
    packs = pack_cells(grid.cells, 2)
    assert [len(p) for p in packs] == [2, 2, 1]
    assert sorted(c.cell_id for p in packs for c in p) == sorted(c.cell_id for c in grid.cells)
    assert [len(a) for a in chunk(list(range(2500)), 1001)] == [1001, 1001, 498]


def test_a_directory_submitted_elsewhere_needs_alongside_to_run_here(cli, write_grid, tmp_path, monkeypatch):
    """Without sacct (a copy of DIR off the cluster) nobody can tell which cells a task holds."""
    import sys
    from pathlib import Path

    from evalgrid.executors.slurm.ledger import JobRecord, TaskRecord, new_submission, write_submission
    from evalgrid.store.layout import OutputDir

    grid = write_grid(GRID.replace("seed = [0, 1, 2, 3, 4]", "seed = [0]"))
    out = OutputDir(tmp_path / "out")
    submission = new_submission(out, {})
    submission.jobs.append(JobRecord("7", "cells", (TaskRecord("7", (load_grid(grid).cells[0].cell_id,)),)))
    write_submission(out, submission)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    refused = cli("run", grid, "--out", out.root, "--executor", "debug")
    assert refused.exit_code == 2 and "sacct was not found" in refused.output and "--alongside" in refused.output
    assert cli("run", grid, "--out", out.root, "--executor", "debug", "--alongside").exit_code == 0
    status = cli("status", out.root)
    assert status.exit_code == 0 and "done     1" in status.output and "sacct is not here" in status.output


def test_a_task_requeued_more_than_max_requeues_fails_its_cells_and_skips_the_done_ones(write_grid, tmp_path,
                                                                                        monkeypatch):
    """What a task does when Slurm starts it again (no cluster needed: the task is a callable)."""
    import signal

    import pyarrow.parquet as pq

    from evalgrid.evaluation.context import CellContext
    from evalgrid.launch.provenance import current_provenance
    from evalgrid.executors.slurm.tasks import CellPack
    from evalgrid.store.layout import OutputDir

    cells = load_grid(write_grid(GRID)).cells[:3]
    context = CellContext(out_root=tmp_path / "out", grid_name="slurmy", data_root=None, device="cpu",
                          provenance=current_provenance(), train_stages=False)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR2)}
    assert CellPack(context, threads=1, max_requeues=1)(cells[:1]) == {cells[0].cell_id: "done"}
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    outcome = CellPack(context, threads=1, max_requeues=1)(cells)
    assert outcome == {cells[0].cell_id: "done before", cells[1].cell_id: "failed", cells[2].cell_id: "failed"}
    row = pq.read_table(OutputDir(context.out_root).failed_result(cells[1].cell_id)).to_pylist()[0]
    assert row["error_type"] == "TooManyRequeues" and "max_requeues = 1" in row["error_message"]
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # the task's handlers are gone again
