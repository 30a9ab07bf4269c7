"""A cell stopped mid-attack (the scheduler's warning signal) checkpoints at the next step and,
run again, resumes from that iteration: the result equals an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import threading

import pyarrow.parquet as pq
import pytest

from evalgrid.evaluation.context import CellContext

from evalgrid.evaluation.pipeline import execute_cell
from evalgrid.grid import load_grid
from evalgrid.launch.provenance import current_provenance
from evalgrid.evaluation.checkpoint import Interrupted, clear_stop, request_stop
from evalgrid.store.layout import OutputDir

GRID = """
name = "resume"
metrics = ["psnr", "label_acc"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["{attack}"]
batch_size = [2]
trials = [2]
seed = [0]

[attacks.{attack}]
iterations = 30
"""


def _cell_and_context(write_grid, tmp_path, name, attack="ig"):
    grid = load_grid(write_grid(GRID.format(attack=attack)))
    context = CellContext(out_root=tmp_path / name, grid_name=grid.name, data_root=None, device="cpu",
                          provenance=current_provenance())
    return grid.cells[0], context


@pytest.fixture
def stop_after(monkeypatch):
    """stop_after(n): the n-th attack step (counted over the cell's trials) asks to stop, as
    the Slurm task's SIGUSR2/SIGTERM handler does."""
    clear_stop()
    steps = {"count": 0, "stop_at": None}

    def arm(n):
        steps["count"], steps["stop_at"] = 0, n

    def wrap(cls):
        real = cls.step

        def step(self, view, state):
            real(self, view, state)
            steps["count"] += 1
            if steps["count"] == steps["stop_at"]:
                request_stop(signal.SIGUSR2)

        monkeypatch.setattr(cls, "step", step)

    from evalgrid.attacks.dlg import DLG
    from evalgrid.attacks.inverting_gradients import InvertingGradients

    for cls in (InvertingGradients, DLG):
        wrap(cls)
    yield arm
    clear_stop()


def _row(context, cell):
    return pq.read_table(OutputDir(context.out_root).done_result(cell.cell_id)).to_pylist()[0]


@pytest.fixture(scope="module")
def uninterrupted_rows(tmp_path_factory):
    """uninterrupted_rows(attack) -> the row of the cell run without a stop (once per attack)."""
    rows = {}

    def row(attack: str) -> dict:
        if attack not in rows:
            folder = tmp_path_factory.mktemp(f"straight-{attack}")
            (folder / "grid.toml").write_text(GRID.format(attack=attack))
            grid = load_grid(folder / "grid.toml")
            context = CellContext(out_root=folder / "out", grid_name=grid.name, data_root=None, device="cpu",
                                  provenance=current_provenance())
            execute_cell(grid.cells[0], context)
            rows[attack] = _row(context, grid.cells[0])
        return rows[attack]

    return row


@pytest.mark.parametrize("attack", ["ig", "dlg"])
@pytest.mark.parametrize("stop_at", [12, 30, 41])  # mid first trial, at its end, mid second trial
def test_a_stopped_cell_resumes_where_it_stopped_and_equals_an_uninterrupted_run(
        write_grid, tmp_path, stop_after, uninterrupted_rows, attack, stop_at):
    cell, stopped = _cell_and_context(write_grid, tmp_path, "stopped", attack)

    stop_after(stop_at)
    with pytest.raises(Interrupted):
        execute_cell(cell, stopped)
    out = OutputDir(stopped.out_root)
    assert out.checkpoint(cell.cell_id).is_file() and not out.done_result(cell.cell_id).exists()

    clear_stop()
    stop_after(None)
    summary = execute_cell(cell, stopped)
    assert summary.status == "done"
    assert not out.checkpoint(cell.cell_id).exists()  # spent once the result is written
    resumed, uninterrupted = _row(stopped, cell), uninterrupted_rows(attack)
    # stopped at the end of trial 0: trial 1 had not started, so nothing resumes mid-attack
    assert resumed["resumed_at_iteration"] == ([] if stop_at == 30 else [stop_at])
    assert uninterrupted["resumed_at_iteration"] == []
    for column in ("final_loss", "psnr", "attack_iterations", "recovered_labels", "psnr_per_sample"):
        assert resumed[column] == uninterrupted[column], column


def test_a_checkpoint_of_another_config_is_ignored(write_grid, tmp_path, stop_after):
    cell, context = _cell_and_context(write_grid, tmp_path, "run")
    stop_after(5)
    with pytest.raises(Interrupted):
        execute_cell(cell, context)
    clear_stop()
    stop_after(None)
    from evalgrid.evaluation.pipeline import cell_checkpoint

    checkpoint = cell_checkpoint(cell, context)
    other = type(checkpoint)(checkpoint.path, checkpoint.cell_id, config="{}")
    assert other.load() is None and checkpoint.load().steps == 5


def test_a_signal_during_an_attack_is_handled_at_a_step_boundary(write_grid, tmp_path):
    """A real signal, from another thread, while the attack runs: the pack's handler only asks."""
    from evalgrid.executors.slurm.tasks import _ask_to_stop

    grid = load_grid(write_grid(GRID.format(attack="ig").replace("iterations = 30", "iterations = 1000000")))
    cell = grid.cells[0]  # an attack still running when the signal comes
    context = CellContext(out_root=tmp_path / "signalled", grid_name=grid.name, data_root=None, device="cpu",
                          provenance=current_provenance())
    clear_stop()
    previous = signal.signal(signal.SIGTERM, _ask_to_stop)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(Interrupted) as stopped:
            execute_cell(cell, context)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        clear_stop()
    assert stopped.value.signum == signal.SIGTERM
    from evalgrid.evaluation.pipeline import cell_checkpoint

    saved = cell_checkpoint(cell, context).load()
    assert saved.steps > 0 and saved.state is not None
