"""Several cells at once on one device (``cells_per_device``): which worker runs on which GPU,
how many fit in a GPU's memory, the option's checks, and on the CPU the same pool, locally and
in a Slurm task, giving the numbers of one cell at a time. The GPU path itself (pinning, the
memory measured by a worker) needs a GPU: only its arithmetic is tested here."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

import evalgrid
from evalgrid.errors import UserError
from evalgrid.executors.device_memory import CONTEXT_BYTES, GIB, DeviceBudget, DeviceMemory, cells_that_fit
from evalgrid.executors.devices import pool_size, visible_gpus, worker_devices

GRID = """
name = "per-device"
metrics = ["psnr", "ssim", "label_acc"]

[factors]
dataset = ["digits"]
resolution = [16]
model = [{ name = "convnet", width = 4 }]
attack = [{ name = "ig", iterations = 4 }]
batch_size = [1, 2]
seed = [0, 1]
"""


def test_workers_take_the_visible_gpus_round_robin():
    assert worker_devices(("0", "1"), 2) == ("0", "1", "0", "1")
    assert worker_devices(("3",), 3) == ("3", "3", "3")
    assert worker_devices((), 2) == (None, None)  # the CPU: not pinned


def test_the_visible_gpus_are_cuda_visible_devices_names_as_far_as_cuda_counts(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, GPU-5d3f,7")
    assert visible_gpus() == ("2", "GPU-5d3f")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ("0", "1")


def test_cells_per_device_sets_the_number_of_workers_and_refuses_a_workers_that_disagrees():
    assert pool_size(3, 1, ("0", "1")) == 3  # 1: workers alone, as before the option
    assert pool_size(1, 2, ("0", "1")) == 4
    assert pool_size(4, 2, ("0", "1")) == 4
    assert pool_size(1, 3, ()) == 3  # the CPU is one device
    with pytest.raises(UserError) as refused:
        pool_size(3, 2, ("0", "1"))
    assert "workers = 3" in str(refused.value) and "disagree" in str(refused.value)
    assert "2 x 2 GPU(s) (0, 1) = 4 here" in str(refused.value)


def test_on_the_cpu_k_cells_per_device_are_k_workers_sharing_the_cores():
    from evalgrid.launch.runner import RunSettings

    settings = RunSettings(executor="local", workers=1, device="cpu", threads_per_worker=0, cells_per_device=2)
    executor = settings.executor_settings()
    assert (executor.workers, executor.devices) == (2, ())
    assert executor.threads_per_worker == max(1, (os.cpu_count() or 1) // 2)


def test_k_is_lowered_to_the_cells_that_fit_in_the_free_memory_with_a_message():
    fit, message = cells_that_fit(8, 24 * GIB, int(9.1 * GIB), "cuda:0", "measured")
    assert fit == 2  # 24 // 9.1
    assert message == ("cells_per_device 8 lowered to 2: one cell needs about 9.1 GiB of the 24.0 GiB free on "
                       "cuda:0 (measured)")
    assert cells_that_fit(2, 24 * GIB, int(9.1 * GIB), "cuda:0", "measured") == (2, None)
    assert cells_that_fit(4, 24 * GIB, 30 * GIB, "cuda:1", "measured")[0] == 1  # never none


def test_one_cell_is_its_peak_with_headroom_and_a_context_against_what_was_free_before_it():
    memory = DeviceMemory(peak_reserved=8 * GIB, reserved=6 * GIB, free=10 * GIB)
    assert memory.cell_bytes() == int(8.8 * GIB) + CONTEXT_BYTES
    assert memory.free_before() == 16 * GIB + CONTEXT_BYTES


def test_a_gpu_runs_one_worker_until_measured_then_those_that_fit_and_fewer_after_a_larger_cell():
    notes = []
    budget = DeviceBudget(4, notes.append)
    assert budget.workers("0") == 1
    first = DeviceMemory(peak_reserved=5 * GIB, reserved=5 * GIB, free=13 * GIB)  # 18.5 GiB free before, cells of 6
    budget.measured("0", first)
    assert budget.workers("0") == 3 and budget.workers("1") == 1
    assert len(notes) == 1 and notes[0].startswith("cells_per_device 4 lowered to 3")
    budget.measured("0", DeviceMemory(peak_reserved=4 * GIB, reserved=4 * GIB, free=2 * GIB))  # smaller: no change
    assert budget.workers("0") == 3 and len(notes) == 1
    budget.measured("0", DeviceMemory(peak_reserved=7 * GIB, reserved=7 * GIB, free=1 * GIB))  # cells of 8.2
    assert budget.workers("0") == 2 and notes[-1].startswith("cells_per_device 4 lowered to 2")


def test_the_row_names_the_gpu_a_pinned_worker_ran_on(monkeypatch):
    import torch

    from evalgrid.evaluation import context

    assert context.device_label("cpu") == "cpu"
    monkeypatch.setattr(context, "resolve_device", lambda requested: torch.device("cuda"))
    assert context.device_label("cuda") == "cuda"
    monkeypatch.setenv(context.PINNED_GPU_ENV, "2")
    assert context.device_label("cuda") == "cuda:2"


@pytest.mark.parametrize("args, table, words", [
    (["--cells-per-device", "0"], "", "--cells-per-device"),
    ([], "\n[run]\ncells_per_device = 0\n", "run.cells_per_device"),
    ([], '\n[slurm]\ncells_per_device = "two"\n', "slurm.cells_per_device"),
    (["--workers", "3", "--cells-per-device", "2", "--device", "cpu"], "", "disagree"),
])
def test_a_bad_cells_per_device_is_one_paragraph_and_exit_code_2(cli, write_grid, tmp_path, args, table, words):
    result = cli("run", write_grid(GRID + table), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def _rows(out) -> pd.DataFrame:
    return evalgrid.load(out).set_index("cell_id").sort_index()


def test_two_cells_per_device_give_the_numbers_of_one_cell_at_a_time(cli, write_grid, tmp_path):
    grid = write_grid(GRID)
    together = cli("run", grid, "--out", tmp_path / "two", "--cells-per-device", "2", "--threads", "1",
                   "--device", "cpu")
    assert together.exit_code == 0 and "2 cells per device" in together.output, together.output
    alone = cli("run", grid, "--out", tmp_path / "one", "--executor", "debug", "--threads", "1", "--device", "cpu")
    assert alone.exit_code == 0, alone.output
    two, one = _rows(tmp_path / "two"), _rows(tmp_path / "one")
    assert list(two.index) == list(one.index) and len(two) == 4 and (two["status"] == "done").all()
    for column in ("psnr", "ssim", "final_loss"):
        assert two[column].tolist() == one[column].tolist(), column
    assert [list(v) for v in two["recovered_labels"]] == [list(v) for v in one["recovered_labels"]]
    for cell_id in two.index:
        with np.load(tmp_path / "two" / "artifacts" / cell_id / "reconstruction.npz") as a, \
                np.load(tmp_path / "one" / "artifacts" / cell_id / "reconstruction.npz") as b:
            assert a.files == b.files
            for name in a.files:
                assert np.array_equal(a[name], b[name]), (cell_id, name)


def _when_running(out, count: int, timeout_s: float = 120) -> list:
    """The progress of ``count`` cells past their first attack step."""
    from evalgrid.store.cell_progress import read_running

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = [p for p in read_running(out).cells.values() if p.iteration > 0]
        if len(running) >= count:
            return running
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} cells running after {timeout_s} s")


def test_sigterm_to_a_slurm_task_running_two_cells_at_once_checkpoints_both_and_starts_no_other(
        write_grid, tmp_path):
    """A pack of 3 cells, 2 at a time in workers: the task's SIGTERM (preemption, scancel) reaches
    both running attacks, which checkpoint; the third cell does not start and the task leaves as
    with one cell at a time (exit 143), no result written. (A worker killed mid-cell fails that
    cell alone: tests/test_end_to_end.py, on this same pool.)"""
    from evalgrid.evaluation.checkpoint import clear_stop
    from evalgrid.evaluation.context import CellContext
    from evalgrid.executors.slurm.tasks import CellPack
    from evalgrid.grid import load_grid
    from evalgrid.launch.provenance import current_provenance
    from evalgrid.store.layout import OutputDir

    grid = load_grid(write_grid(GRID.replace("iterations = 4", "iterations = 1000000")))
    cells = grid.cells[:3]
    out = OutputDir(tmp_path / "out")
    context = CellContext(out_root=out.root, grid_name=grid.name, data_root=None, device="cpu",
                          provenance=current_provenance(), train_stages=False)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR2)}
    running: set[str] = set()

    def preempt() -> None:
        try:
            running.update(p.cell_id for p in _when_running(out, 2))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=preempt, daemon=True)
    helper.start()
    try:
        with pytest.raises(SystemExit) as stopped:
            CellPack(context, threads=2, max_requeues=3, cells_per_device=2)(cells)
    finally:
        helper.join(timeout=60)
        clear_stop()
    assert stopped.value.code == 128 + signal.SIGTERM
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert len(running) == 2 and not out.done_ids() and not out.failed_ids()
    for cell in cells:
        assert out.checkpoint(cell.cell_id).is_file() == (cell.cell_id in running), cell.cell_id
    assert not list(out.running.glob("*.json"))  # no cell left marked as running
