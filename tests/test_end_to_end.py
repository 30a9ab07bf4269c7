"""The real CLI, end to end, on shipped digits with few iterations: run, resume, collect, load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import evalgrid
from evalgrid.store.results import result_schema

pytestmark = pytest.mark.slow

E2E_GRID = """
name = "e2e"
metrics = ["psnr", "ssim", "label_acc"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["idlg", { name = "ig", tv = 0.0 }]
batch_size = [1, 2]
labels = ["known", "inferred"]
seed = [0]

[attacks.idlg]
iterations = 3

[attacks.ig]
iterations = 10
"""
CELLS = 8


def evalgrid_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalgrid", *map(str, args)], capture_output=True, text=True,
                          timeout=600, **kwargs)


def start_run(grid, out, **popen) -> subprocess.Popen:
    """`evalgrid run GRID --out OUT --workers 2` in the background."""
    return subprocess.Popen([sys.executable, "-m", "evalgrid", "run", str(grid), "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for_results(out, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list((out / "cells").glob("*.parquet"))) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_plan_lists_every_cell_and_counts_them(write_grid):
    done = evalgrid_cli("plan", write_grid(E2E_GRID))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == f"{CELLS} cells"
    assert lines[0].split() == ["cell_id", "dataset", "model", "attack", "batch_size", "labels", "seed"]


def test_plan_json_is_machine_readable(write_grid):
    done = evalgrid_cli("plan", write_grid(E2E_GRID), "--format", "json")
    cells = json.loads(done.stdout)
    assert len(cells) == CELLS and {"cell_id", "attack", "batch_size"} <= set(cells[0])
    assert done.stderr.strip().splitlines()[-1] == f"{CELLS} cells"


def test_run_writes_every_cell_and_a_tidy_table(write_grid, tmp_path):
    out = tmp_path / "out"
    done = evalgrid_cli("run", write_grid(E2E_GRID), "--out", out, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert len(list((out / "cells").glob("*.parquet"))) == CELLS
    assert (out / "grid.toml").is_file() and (out / "results.parquet").is_file()
    for cell_dir in (out / "artifacts").iterdir():
        assert (cell_dir / "reconstruction.png").stat().st_size > 0
    frame = evalgrid.load(out)
    assert len(frame) == CELLS and frame["cell_id"].is_unique
    assert (frame["status"] == "done").all()
    assert frame["batch_size"].dtype == "int64" and isinstance(frame["attack"].dtype, pd.CategoricalDtype)
    assert list(frame["attack"].cat.categories) == ["idlg", "ig(tv=0.0)"], "categories follow the grid's order"
    for metric in ("psnr", "ssim", "label_acc"):
        assert frame[metric].dtype == "float64"
    assert frame["psnr"].notna().all() and frame["ssim"].notna().all()
    known = frame["labels"] == "known"
    assert frame.loc[known, "label_acc"].isna().all() and frame.loc[~known, "label_acc"].between(0, 1).all()
    assert all(len(v) == t and all(len(trial) == b for trial in v)
               for v, t, b in zip(frame["psnr_per_sample"], frame["trials"], frame["batch_size"]))
    assert pq.read_schema(out / "results.parquet").equals(result_schema(), check_metadata=False)
    row = frame.iloc[0]
    assert row["torch_version"] and row["evalgrid_version"] == evalgrid.__version__ and row["wall_s"] > 0
    assert json.loads(row["config"])["attack"]["name"] in {"idlg", "ig"}
    # the run printed its summary table, and a second run has nothing to do
    assert "e2e: 8 cells done" in done.stdout
    again = evalgrid_cli("plan", write_grid(E2E_GRID), "--out", out)
    assert again.stdout.strip().splitlines()[-1] == f"{CELLS} cells, {CELLS} already done"


def test_same_cell_gives_the_same_numbers(write_grid, tmp_path):
    grid = write_grid(E2E_GRID)
    for name in ("a", "b"):
        assert evalgrid_cli("run", grid, "--out", tmp_path / name, "--executor", "debug").returncode == 0
    a, b = (evalgrid.load(tmp_path / n).set_index("cell_id").sort_index() for n in ("a", "b"))
    pd.testing.assert_series_equal(a["psnr"], b["psnr"])
    pd.testing.assert_series_equal(a["final_loss"], b["final_loss"])


def test_a_failing_cell_is_recorded_and_the_others_go_on(write_grid, tmp_path):
    # IG's step size 1e300 overflows float32 at its first Adam step: those cells fail at run time
    # (plan cannot know), the others finish
    grid = write_grid(E2E_GRID.replace('{ name = "ig", tv = 0.0 }', '{ name = "ig", tv = 0.0, lr = 1e300 }'))
    out = tmp_path / "out"
    done = evalgrid_cli("run", grid, "--out", out, "--executor", "debug")
    assert done.returncode == 1
    assert "4 cell(s) failed" in done.stderr and "RuntimeError" in done.stderr
    frame = evalgrid.load(out)
    failed = frame[frame["status"] == "failed"]
    assert len(failed) == 4 and failed["attack"].astype(str).str.startswith("ig(").all()
    assert failed["error_type"].eq("RuntimeError").all() and failed["traceback"].str.contains("Traceback").all()
    status = evalgrid_cli("status", out)
    assert "done     4" in status.stdout and "failed   4" in status.stdout and "RuntimeError" in status.stdout


def test_run_killed_mid_cell_resumes_exactly_the_missing_cells(write_grid, tmp_path):
    grid = write_grid(E2E_GRID.replace("iterations = 10", "iterations = 400"))
    out = tmp_path / "out"
    process = start_run(grid, out, start_new_session=True)
    wait_for_results(out, 2)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and its workers, mid-cell
    process.wait()
    first = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    assert 2 <= len(first) < CELLS
    resumed = evalgrid_cli("run", grid, "--out", out, "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(first)} already done, {CELLS - len(first)} to run" in resumed.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    assert len(after) == CELLS
    assert all(after[name] == mtime for name, mtime in first.items()), "finished cells are not rerun"
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "no temporary file survives"
    for path in (out / "cells").glob("*.parquet"):
        assert pq.read_table(path).num_rows == 1
    assert evalgrid.load(out)["cell_id"].is_unique


def test_sigterm_stops_cleanly_and_keeps_finished_cells(write_grid, tmp_path):
    grid = write_grid(E2E_GRID.replace("iterations = 10", "iterations = 400"))
    out = tmp_path / "out"
    process = start_run(grid, out)
    wait_for_results(out, 1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert evalgrid_cli("run", grid, "--out", out, "--workers", "2").returncode == 0
    assert len(list((out / "cells").glob("*.parquet"))) == CELLS


def test_a_second_run_on_the_same_directory_is_refused_while_one_runs(write_grid, tmp_path):
    grid = write_grid(E2E_GRID.replace("iterations = 10", "iterations = 400"))
    out = tmp_path / "out"
    first = start_run(grid, out)
    try:
        deadline = time.monotonic() + 120
        while not (out / "grid.toml").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        second = evalgrid_cli("run", grid, "--out", out)
        assert second.returncode == 2 and "another evalgrid run" in second.stderr
    finally:
        first.kill()
        first.communicate()


def test_version_and_help(cli):
    assert evalgrid.__version__ in cli("--version").output
    for command in ("plan", "run", "status", "collect", "weights"):
        assert "Example:" in cli(command, "--help").output


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_a_worker_killed_mid_cell_fails_that_cell_only(write_grid, tmp_path):
    grid = write_grid(E2E_GRID.replace("iterations = 10", "iterations = 1000"))
    out = tmp_path / "out"
    launcher = start_run(grid, out)
    deadline = time.monotonic() + 120
    workers = []
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = [p for p in _children(launcher.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        time.sleep(0.2)
    wait_for_results(out, 1)  # the workers are past their start-up and running cells
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=600)
    assert launcher.returncode == 1, stderr
    frame = evalgrid.load(out)
    assert len(frame) == CELLS and frame["cell_id"].is_unique
    failed = frame[frame["status"] == "failed"]
    assert len(failed) == 1 and failed["error_type"].iloc[0] == "WorkerDied"
    assert "signal 9" in failed["error_message"].iloc[0]
    assert evalgrid_cli("run", grid, "--out", out).returncode == 0, "the next run retries the failed cell"
    assert (evalgrid.load(out)["status"] == "done").all()


def test_result_files_get_the_permissions_of_the_umask_not_private_ones(tmp_path):
    """A run on a shared cluster filesystem is readable by collaborators as any file is."""
    from evalgrid.store.atomic import UMASK, atomic_write_text

    atomic_write_text(tmp_path / "grid.toml", "name = 'x'\n")
    assert (tmp_path / "grid.toml").stat().st_mode & 0o777 == 0o666 & ~UMASK


def test_a_metric_the_images_are_too_small_for_is_refused_before_anything_runs(write_grid, cli, tmp_path):
    grid = write_grid("""
        name = "small-images"
        metrics = ["psnr", "lpips"]
        [factors]
        dataset = [{ name = "digits", resolution = 16 }]
        model = ["lenet"]
        attack = ["ig"]
    """)
    result = cli("run", grid, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "metrics: 'lpips' needs images of at least 31x31 pixels" in result.output
    assert "gives 16x16" in result.output and not (tmp_path / "out").exists()
