"""A cell's convergence record: a point (trial, iteration, loss, PSNR) every k steps of each trial
and at its last step, kept across a stop and resume, written as curve.csv, loaded by load_curves;
recording it leaves the attack's results untouched."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from evalgrid.attacks.base import model_gradients
from evalgrid.attacks.inverting_gradients import InvertingGradients
from evalgrid.attacks.losses import cosine_distance
from evalgrid.attacks.stacked import StackedInvertingGradients
from evalgrid.catalogue import ATTACKS
from evalgrid.catalogue.options import parse_options
from evalgrid.errors import UserError
from attacking import stop_at_the_nth_step
from evalgrid.evaluation.checkpoint import AttackProgress, Interrupted, clear_stop, run_resumable
from evalgrid.evaluation.context import CellContext
from evalgrid.evaluation import convergence
from evalgrid.evaluation.convergence import curve_recorder, recording_interval
from evalgrid.evaluation.pipeline import execute_cell
from evalgrid.evaluation.trials import run_trials
from evalgrid.fl.threat_model import SharedUpdate
from evalgrid.grid import load_grid
from evalgrid.launch.provenance import current_provenance
from evalgrid.store.layout import OutputDir
from evalgrid.store.load import load_curves
from evalgrid.store.results import ResultsNote
from tests.attacking import build_attack, seeded
from tests.test_attacks import victim

GRID = """
name = "curves"
metrics = {metrics}

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["ig"]
batch_size = [{batch_size}]
trials = [2]
seed = [0]

[attacks.ig]
iterations = 10
"""


def never_saved(progress):
    raise AssertionError("nothing asked to stop")


def ig_options(**overrides):
    return parse_options(ATTACKS["ig"].options, {"iterations": 10, **overrides})


def run_cell(folder, points, stack=1, metrics='["psnr"]', batch_size=1):
    """Run the grid's one cell into folder/out; (cell, context)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.toml").write_text(GRID.format(metrics=metrics, batch_size=batch_size))
    cell = load_grid(folder / "grid.toml").cells[0]
    context = CellContext(out_root=folder / "out", grid_name="curves", data_root=None, device="cpu",
                          provenance=current_provenance(), stack_trials=stack, curve_points=points)
    return cell, context


def row_of(context, cell):
    return pq.read_table(OutputDir(context.out_root).done_result(cell.cell_id)).to_pylist()[0]


def curve_text(context, cell) -> str:
    return OutputDir(context.out_root).curve(cell.cell_id).read_text()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """finished(points, stack=1, ...) -> (cell, context) of the cell run to its end (once each)."""
    runs = {}

    def run(points, stack=1, metrics='["psnr"]', batch_size=1):
        key = (points, stack, metrics, batch_size)
        if key not in runs:
            cell, context = run_cell(tmp_path_factory.mktemp("run"), points, stack, metrics, batch_size)
            assert execute_cell(cell, context).status == "done"
            runs[key] = cell, context
        return runs[key]

    return run


REAL_MIN_INTERVAL = convergence.MIN_INTERVAL


@pytest.fixture(autouse=True, scope="module")
def points_at_any_step():
    """These tests check the recording's mechanics on runs of a few steps: the floor on k is
    lifted here (and tested on its own below)."""
    convergence.MIN_INTERVAL = 1
    yield
    convergence.MIN_INTERVAL = REAL_MIN_INTERVAL


def test_the_interval_is_planned_iterations_over_points_rounded_up():
    assert [recording_interval(10, points) for points in (4, 5, 10, 100)] == [3, 2, 1, 1]
    assert recording_interval(24_000, 100) == 240
    assert recording_interval(10, 0) == 0 and curve_recorder(10, 0, None) is None


def test_points_are_at_least_ten_steps_apart(monkeypatch):
    monkeypatch.setattr(convergence, "MIN_INTERVAL", REAL_MIN_INTERVAL)
    assert REAL_MIN_INTERVAL == 10
    assert [recording_interval(planned, 20) for planned in (5, 20, 300, 10_000)] == [10, 10, 15, 500]


def test_points_fall_every_k_steps_and_at_each_trials_last_step():
    view, _ = victim(seed=1, known_labels=True)
    progress = AttackProgress()
    run_trials("ig", ig_options(), view, seed=0, trials=2, progress=progress, save=never_saved, stack=1,
               curve_points=4)  # k = ceil(10 / 4) = 3
    assert [(p["trial"], p["iteration"]) for p in progress.curve] == [
        (0, 3), (0, 6), (0, 9), (0, 10), (1, 3), (1, 6), (1, 9), (1, 10)]


def test_a_point_holds_the_loss_of_the_images_at_that_step():
    view, _ = victim(seed=2, known_labels=True)
    attack = build_attack("ig", iterations=10)
    progress = AttackProgress()
    final = run_resumable(attack, view, seeded(0), progress, 0, never_saved, curve_recorder(10, 4, None))
    expected, state = {}, attack.start(view, seeded(0))  # the same run, by hand
    for step in range(1, 11):
        attack.step(view, state)
        if step in (3, 6, 9):
            gradients = model_gradients(view, state.images.detach(), state.labels, create_graph=False)
            expected[step] = cosine_distance(gradients, state.target).item()
    expected[10] = state.best_score
    assert {p["iteration"]: p["loss"] for p in progress.curve} == expected
    assert progress.curve[-1]["loss"] == final.final_loss


def test_a_midway_point_with_restarts_is_the_best_so_far_with_the_running_restart_competing():
    view, _ = victim(seed=4, known_labels=True)
    attack = build_attack("ig", iterations=3, restarts=2)
    progress = AttackProgress()
    run_resumable(attack, view, seeded(0), progress, 0, never_saved, curve_recorder(6, 6, None))  # every step
    expected, state = [], attack.start(view, seeded(0))
    while not attack.done(state):
        attack.step(view, state)
        if attack.done(state):
            expected.append(state.best_score)
            continue
        gradients = model_gradients(view, state.images.detach(), state.labels, create_graph=False)
        expected.append(min(state.best_score, cosine_distance(gradients, state.target).item()))
    assert [p["loss"] for p in progress.curve] == expected and len(expected) == 6


def test_the_running_restart_wins_a_midway_result_when_it_matches_better():
    view, _ = victim(seed=4, known_labels=True)
    attack = build_attack("ig", iterations=3, restarts=2)
    state = attack.start(view, seeded(0))
    for _ in range(4):  # the first restart's 3 steps, one of the second's
        attack.step(view, state)
    running = cosine_distance(model_gradients(view, state.images.detach(), state.labels, create_graph=False),
                              state.target).item()
    state.best_score = 2.0  # the finished restart made worse than any match (cosine distance <= 2)
    result = attack.result(view, state)
    assert result.final_loss == running and torch.equal(result.images, state.images.detach())
    assert result.iterations == 4
    state.best_score = -1.0  # ... and better than any
    assert torch.equal(attack.result(view, state).images, state.best_images)


def test_bayes_records_before_its_first_restart_ends():
    view, _ = victim(seed=5, known_labels=True)
    attack = build_attack("bayes", iterations=3, restarts=2)
    progress = AttackProgress()
    final = run_resumable(attack, view, seeded(0), progress, 0, never_saved, curve_recorder(6, 6, None))
    assert [p["iteration"] for p in progress.curve] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(p["loss"]) for p in progress.curve) and progress.curve[-1]["loss"] == final.final_loss


@pytest.mark.parametrize("stack", [1, 2])
def test_recording_leaves_the_cells_reconstruction_bit_identical(finished, stack):
    cell, without = finished(0, stack)
    _, recorded = finished(7, stack)  # k = 2: a point every other step
    assert not OutputDir(without.out_root).curve(cell.cell_id).exists()
    assert len(curve_text(recorded, cell).splitlines()) == 1 + 2 * 5  # header, 2 trials × (2, 4, 6, 8, 10)
    plain = np.load(OutputDir(without.out_root).artifacts(cell.cell_id) / "reconstruction.npz")
    other = np.load(OutputDir(recorded.out_root).artifacts(cell.cell_id) / "reconstruction.npz")
    assert np.array_equal(plain["reconstructions"], other["reconstructions"])
    for column in ("final_loss", "psnr_per_sample", "recovered_labels", "attack_iterations"):
        assert row_of(recorded, cell)[column] == row_of(without, cell)[column], column


def test_recording_leaves_a_dropout_models_random_draws_alone():
    """The attacker's model draws dropout masks from torch's global generator: taking a point must
    not move it, or every later step would see other masks."""
    view, client = victim(seed=3, known_labels=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(view.data_shape), 16), torch.nn.ReLU(),
                                torch.nn.Dropout(0.5), torch.nn.Linear(16, 10)).train()
    inputs = view.normalization.normalize(client.images)
    gradients = torch.autograd.grad(torch.nn.functional.cross_entropy(model(inputs), client.labels),
                                    list(model.parameters()))
    view = dataclasses.replace(view, model=model, update=SharedUpdate(tuple(g.detach() for g in gradients), 1))

    def images(points):
        torch.manual_seed(0)
        progress = AttackProgress()
        run_trials("ig", ig_options(iterations=6), view, 0, 1, progress, never_saved, 1, curve_points=points)
        return progress.finished[0]["images"], len(progress.curve)

    (plain, none), (recorded, taken) = images(0), images(6)
    assert (none, taken) == (0, 6)
    assert torch.equal(plain, recorded)


def test_stacked_trials_record_each_lane_at_the_sequential_points(finished):
    cell, alone = finished(7, 1)
    _, together = finished(7, 2)
    sequential, stacked = (pd.read_csv(io.StringIO(curve_text(c, cell))) for c in (alone, together))
    assert stacked[["trial", "iteration"]].equals(sequential[["trial", "iteration"]])
    assert stacked["loss"].to_numpy() == pytest.approx(sequential["loss"].to_numpy(), rel=1e-3, abs=1e-5)
    assert stacked["psnr"].to_numpy() == pytest.approx(sequential["psnr"].to_numpy(), abs=0.05)


@pytest.fixture
def stop_at_step(monkeypatch):
    """stop_at_step(n): the n-th attack step of the cell (counted over its trials, or over a
    stacked chunk's steps) asks to stop, as a Slurm task's signal handler does."""
    clear_stop()
    yield stop_at_the_nth_step(monkeypatch, InvertingGradients, StackedInvertingGradients)
    clear_stop()


@pytest.mark.parametrize("stack, stop_at", [(1, 6), (1, 7), (1, 16), (2, 6)])  # k = 3: 6 is a point, 7 is not
def test_a_resumed_cell_keeps_its_curve_exactly(finished, tmp_path, stop_at_step, stack, stop_at):
    cell, whole = finished(4, stack)
    _, stopped = run_cell(tmp_path, 4, stack)
    stop_at_step(stop_at)
    with pytest.raises(Interrupted):
        execute_cell(cell, stopped)
    clear_stop()
    stop_at_step(None)
    assert execute_cell(cell, stopped).status == "done"
    assert row_of(stopped, cell)["resumed_at_iteration"] == [stop_at]
    assert curve_text(stopped, cell) == curve_text(whole, cell)


def psnr_by_formula(originals: np.ndarray, reconstructions: np.ndarray) -> float:
    """The batch mean of each image's 10·log10(1 / MSE)."""
    mse = ((originals.astype(np.float64) - reconstructions.astype(np.float64)) ** 2).reshape(len(originals), -1)
    return float(np.mean([10 * math.log10(1 / m) for m in mse.mean(axis=1)]))


def test_the_last_points_psnr_is_that_of_the_trials_returned_images(finished):
    cell, context = finished(4, batch_size=2)  # two images: the matching matters
    curve = pd.read_csv(io.StringIO(curve_text(context, cell)))
    saved = np.load(OutputDir(context.out_root).artifacts(cell.cell_id) / "reconstruction.npz")
    last = curve.groupby("trial").last()
    for trial in (0, 1):
        assert last.loc[trial, "psnr"] == pytest.approx(
            psnr_by_formula(saved["originals"], saved["reconstructions"][trial]), abs=1e-9)
    assert last["loss"].min() == row_of(context, cell)["final_loss"]  # the row's is the best trial's


def test_a_cell_that_does_not_measure_psnr_leaves_the_column_empty(finished):
    cell, context = finished(4, metrics='["label_acc"]')
    lines = curve_text(context, cell).splitlines()
    assert lines[0] == "trial,iteration,loss,psnr"
    assert all(line.endswith(",") for line in lines[1:]) and len(lines) == 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is skipped
        curves = load_curves(context.out_root)
    assert len(curves) == 8 and curves["psnr"].isna().all() and curves["loss"].notna().all()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run of a two-cell grid with the CLI (the default of 20 points: one every step of 10)."""
    from click.testing import CliRunner

    from evalgrid.cli import main

    folder = tmp_path_factory.mktemp("cli")
    (folder / "grid.toml").write_text(GRID.format(metrics='["psnr"]', batch_size="1, 2"))
    done = CliRunner().invoke(main, ["run", str(folder / "grid.toml"), "--out", str(folder / "out"),
                                     "--executor", "debug", "--threads", "1"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return folder / "out", [cell.cell_id for cell in load_grid(folder / "grid.toml").cells]


def test_load_curves_gives_every_finished_cells_curve_in_grid_order(run_dir):
    out, cell_ids = run_dir
    curves = load_curves(out)
    assert list(curves.columns) == ["cell_id", "trial", "iteration", "loss", "psnr"]
    assert list(dict.fromkeys(curves["cell_id"])) == cell_ids
    one = curves[curves["cell_id"] == cell_ids[1]]
    assert list(zip(one["trial"], one["iteration"])) == [(t, i) for t in (0, 1) for i in range(1, 11)]
    assert str(curves["iteration"].dtype) == "int64" and str(curves["psnr"].dtype) == "float64"
    on_disk = pd.read_csv(OutputDir(out).curve(cell_ids[1]))
    assert one["loss"].tolist() == on_disk["loss"].tolist()


def _binary(path):
    path.write_bytes(b"\x00\xff\xfe PK\x03\x04" * 50)


def _replace(text):
    return lambda path: path.write_text(text)


def _directory(path):
    path.unlink()
    path.mkdir()


def _link(path):
    path.unlink()
    os.symlink("/dev/zero", path)


DAMAGES = {
    "binary": _binary,
    "empty": _replace(""),
    "other columns": _replace("step,value\n1,2\n"),
    "a formula": _replace("trial,iteration,loss,psnr\n0,1,=cmd|' /C calc'!A0,3\n"),
    "a short row": _replace("trial,iteration,loss,psnr\n0,1\n"),
    "a long row": _replace("trial,iteration,loss,psnr\n0,1,0.5,3,9\n"),
    "a negative iteration": _replace("trial,iteration,loss,psnr\n0,-1,0.5,3\n"),
    "a directory": _directory,
    "a link to a device": _link,
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_curve_is_skipped_with_a_warning_naming_it(run_dir, tmp_path, damage):
    out = tmp_path / "out"
    shutil.copytree(run_dir[0], out, symlinks=True)
    damaged, intact = run_dir[1]
    path = OutputDir(out).curve(damaged)
    DAMAGES[damage](path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        curves = load_curves(out)
    notes = [str(w.message) for w in caught if issubclass(w.category, ResultsNote)]
    assert len(notes) == 1 and str(path) in notes[0]
    assert set(curves["cell_id"]) == {intact} and len(curves) == 20


def test_load_curves_of_a_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such output directory"):
        load_curves(tmp_path / "nowhere")


def test_the_grids_curve_points_reach_the_cells(tmp_path):
    """[run] curve_points = 4 on 10 iterations: points at steps 3, 6, 9 and the last, 10."""
    from click.testing import CliRunner

    from evalgrid.cli import main

    (tmp_path / "grid.toml").write_text(GRID.format(metrics='["psnr"]', batch_size="1")
                                        + "\n[run]\ncurve_points = 4\n")
    done = CliRunner().invoke(main, ["run", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out"),
                                     "--executor", "debug", "--threads", "1"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    curves = load_curves(tmp_path / "out")
    assert list(zip(curves["trial"], curves["iteration"])) == [(t, i) for t in (0, 1) for i in (3, 6, 9, 10)]
