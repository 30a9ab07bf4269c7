"""Cells packed as lanes of one stacked attack (evaluation/packed.py) report what each cell run
alone reports (within floating-point tolerance), fall back to one by one when they cannot run
together, and leave nothing behind when stopped."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from evalgrid.attacks.stacked import StackedInvertingGradients
from evalgrid.evaluation.checkpoint import Interrupted, clear_stop
from evalgrid.evaluation.context import CellContext
from evalgrid.evaluation.packed import execute_pack
from evalgrid.evaluation.packing import pack_groups
from evalgrid.evaluation.pipeline import execute_cell
from evalgrid.grid import load_grid
from evalgrid.launch.provenance import current_provenance
from evalgrid.store.layout import OutputDir
from tests.attacking import stop_at_the_nth_step

GRID = """
name = "packed"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = {model}
attack = {attack}
batch_size = {batch_size}
trials = [2]
seed = [0, 1, 2]
{extra}

[attacks.ig]
iterations = 20
"""


def cells(write_grid, extra: str = "", model: str = '["lenet"]', attack: str = '["ig"]', batch_size: str = "[2]"):
    return load_grid(write_grid(GRID.format(extra=extra, model=model, attack=attack, batch_size=batch_size))).cells


def context(tmp_path, name: str, **overrides) -> CellContext:
    return CellContext(out_root=tmp_path / name, grid_name="packed", data_root=None, device="cpu",
                       provenance=current_provenance(), **overrides)


def row(ctx: CellContext, cell) -> dict:
    return pq.read_table(OutputDir(ctx.out_root).done_result(cell.cell_id)).to_pylist()[0]


@pytest.fixture
def packs_built(monkeypatch):
    """The number of views of each stacked attack built (a refused one is not built)."""
    built: list[int] = []
    real_init = StackedInvertingGradients.__init__

    def spy(self, options, views, trials_per_view):
        real_init(self, options, views, trials_per_view)
        built.append(len(views))

    monkeypatch.setattr(StackedInvertingGradients, "__init__", spy)
    return built


def test_packed_cells_report_what_each_cell_alone_reports(write_grid, tmp_path, packs_built):
    grid_cells = cells(write_grid)
    alone, packed = context(tmp_path, "alone"), context(tmp_path, "packed", curve_points=2)
    for cell in grid_cells:
        execute_cell(cell, alone)
    assert packs_built == []
    summaries = execute_pack(grid_cells, packed)
    assert packs_built == [3]  # one stacked attack over the three cells' views
    assert [s.cell_id for s in summaries] == [c.cell_id for c in grid_cells]
    for cell in grid_cells:
        a, p = row(alone, cell), row(packed, cell)
        assert p["status"] == "done", p["error_message"]
        assert (a["cells_packed"], p["cells_packed"]) == (1, 3)
        assert p["trials_stacked"] == 2
        assert p["attack_iterations"] == a["attack_iterations"] == 40
        assert p["recovered_labels"] == a["recovered_labels"]
        assert p["true_labels"] == a["true_labels"]
        for x, y in zip(a["psnr_per_sample"], p["psnr_per_sample"]):
            assert y == pytest.approx(x, abs=0.05)
        assert p["final_loss"] == pytest.approx(a["final_loss"], rel=1e-3, abs=1e-5)
        curve = (OutputDir(packed.out_root).artifacts(cell.cell_id) / "curve.csv").read_text().splitlines()
        assert curve[0].startswith("trial,iteration,loss") and len(curve) == 1 + 2 * 2  # 2 trials × (step 10, 20)
        assert not OutputDir(packed.out_root).cell_progress(cell.cell_id).exists()
    seeds_differ = {row(packed, c)["psnr"] for c in grid_cells}
    assert len(seeds_differ) == 3  # each lane attacked its own cell's update


def test_cells_whose_views_do_not_stack_run_one_by_one(write_grid, tmp_path, packs_built, capsys):
    # Local training is not in the pack key: it is checked on the prepared views, which differ here.
    grid_cells = cells(write_grid, 'local_training = ["fedsgd", {name = "fedavg", local_steps = 2, '
                                   'minibatch_size = 1}]')
    fedsgd = [c for c in grid_cells if c.local_training.name == "fedsgd"][:1]
    fedavg = [c for c in grid_cells if c.local_training.name == "fedavg"][:1]
    mixed = fedsgd + fedavg
    assert len(pack_groups(mixed, 8)) == 1  # one pack by its key ...
    ctx = context(tmp_path, "mixed", curve_points=0)
    summaries = execute_pack(mixed, ctx)
    assert packs_built == []  # ... refused by the views' check before any lane ran
    assert [s.status for s in summaries] == ["done", "done"]
    assert [row(ctx, c)["cells_packed"] for c in mixed] == [1, 1]
    assert "run one by one, not packed (NotStackable: the views differ in local training)" in capsys.readouterr().err


def test_pack_groups_keep_apart_what_cannot_stack(write_grid):
    grid_cells = cells(write_grid, model='["lenet", "convnet"]', batch_size="[1, 2]")
    groups = pack_groups(grid_cells, 8)
    assert sorted(len(g) for g in groups) == [3, 3, 3, 3]
    for group in groups:
        assert len({(c.model.name, c.batch_size) for c in group}) == 1
        assert [c.seed for c in group] == [0, 1, 2]
    assert [len(g) for g in pack_groups(grid_cells, 2)] == [2, 1] * 4
    assert pack_groups(grid_cells, 1) == [[c] for c in grid_cells]
    other_attack = cells(write_grid, attack='["dlg"]')
    assert pack_groups(other_attack, 8) == [[c] for c in other_attack]  # no stacked form: alone


def test_a_stopped_pack_writes_nothing_and_runs_again_to_the_same_numbers(write_grid, tmp_path, monkeypatch):
    grid_cells = cells(write_grid)[:2]
    whole = context(tmp_path, "whole", curve_points=0)
    execute_pack(grid_cells, whole)
    clear_stop()
    arm = stop_at_the_nth_step(monkeypatch, StackedInvertingGradients)
    stopped = context(tmp_path, "stopped", curve_points=0)
    arm(5)
    try:
        with pytest.raises(Interrupted):
            execute_pack(grid_cells, stopped)
        out = OutputDir(stopped.out_root)
        for cell in grid_cells:
            assert not out.done_result(cell.cell_id).exists()
            assert not out.checkpoint(cell.cell_id).exists()
            assert not out.cell_progress(cell.cell_id).exists()
        clear_stop()
        arm(None)
        execute_pack(grid_cells, stopped)
    finally:
        clear_stop()
    for cell in grid_cells:
        first, again = row(whole, cell), row(stopped, cell)
        for key in ("psnr_per_sample", "final_loss", "attack_iterations", "recovered_labels", "cells_packed"):
            assert again[key] == first[key], key


def test_evalgrid_run_packs_cells_with_pack_cells_in_the_local_pool_and_the_debug_executor(write_grid, tmp_path, cli):
    import pandas as pd

    grid = write_grid(GRID.format(extra="", model='["lenet"]', attack='["ig"]', batch_size="[2]"))
    for executor in ("local", "debug"):
        out = tmp_path / executor
        result = cli("run", str(grid), "--out", str(out), "--executor", executor, "--device", "cpu",
                     "--pack-cells", "2", "--no-check")
        assert result.exit_code == 0, result.output
        frame = pd.read_parquet(out / "results.parquet")
        assert (frame.status == "done").all()
        assert sorted(frame.cells_packed) == [1, 2, 2]  # three cells in packs of at most two


def test_a_slurm_task_packs_its_cells_on_its_node(write_grid, tmp_path):
    from evalgrid.executors.slurm.tasks import CellPack

    grid_cells = cells(write_grid)
    ctx = context(tmp_path, "task", train_stages=False, curve_points=0, pack_cells=3)
    assert CellPack(ctx, threads=1, max_requeues=1)(grid_cells) == {c.cell_id: "done" for c in grid_cells}
    assert [row(ctx, c)["cells_packed"] for c in grid_cells] == [3, 3, 3]


def test_packing_is_off_by_default_until_a_measurement_says_it_pays(monkeypatch):
    import subprocess
    import sys

    import evalgrid.evaluation.packing as packing

    assert packing.pack_size(0, "cpu") == 1  # the CPU measured 0.5x
    assert packing.pack_size(4, "cpu") == 4  # the user's choice wins
    assert packing.default_pack_cells("Some Future GPU 999", 0) == 1  # not measured there
    monkeypatch.setattr(packing, "MEASURED", (packing.Measurement("cpu", packing.CELLS, 1.5, "2026-12-07", "t"),))
    assert packing.pack_size(0, "cpu") == packing.PACKED_CELLS
    assert packing.default_pack_cells("Some Future GPU 999", 0) == 1
    # Under the shipped measurements the launcher decides without importing torch.
    probe = "import sys; from evalgrid.evaluation.packing import pack_size; pack_size(0, 'auto'); " \
            "print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_a_pack_whose_stacked_attack_fails_runs_its_cells_alone(write_grid, tmp_path, monkeypatch, capsys):
    def out_of_memory(self, view, state):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(StackedInvertingGradients, "step", out_of_memory)
    grid_cells = cells(write_grid)[:2]
    ctx = context(tmp_path, "oom", curve_points=0)
    assert [s.status for s in execute_pack(grid_cells, ctx)] == ["done", "done"]
    assert [row(ctx, c)["cells_packed"] for c in grid_cells] == [1, 1]
    assert "not packed (RuntimeError: CUDA out of memory" in capsys.readouterr().err
