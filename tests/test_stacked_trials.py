"""Trials and cells run together as stacked lanes give the numbers of running them one by one
(within floating-point tolerance), resume from a checkpoint, and refuse what cannot stack."""

from __future__ import annotations

import copy
import dataclasses
import math

import pyarrow.parquet as pq
import pytest
import torch

from evalgrid.attacks.inverting_gradients import InvertingGradientsOptions
from evalgrid.attacks.lanes import NotStackable
from evalgrid.attacks.stacked import StackedInvertingGradients
from evalgrid.evaluation.context import CellContext
from evalgrid.evaluation.pipeline import execute_cell
from evalgrid.catalogue import LOCAL_TRAININGS
from evalgrid.grid import load_grid
from evalgrid.catalogue import MODELS
from evalgrid.catalogue.options import parse_options
from evalgrid.launch.provenance import current_provenance
from attacking import stop_at_the_nth_step
from evalgrid.evaluation.checkpoint import Interrupted, clear_stop
from evalgrid.store.layout import OutputDir
from evalgrid.fl.threat_model import SharedUpdate
from evalgrid.evaluation.trials import stackable_model
from tests.attacking import build_attack
from tests.test_attacks import digits, psnr, victim

ITERATIONS = 25


def options(**overrides) -> InvertingGradientsOptions:
    return parse_options(InvertingGradientsOptions, {"iterations": ITERATIONS, **overrides})


def generators(count: int, offset: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(offset + t) for t in range(count)]


def stacked_run(views, trials: int, **overrides):
    attack = StackedInvertingGradients(options(**overrides), views, trials)
    state = attack.start(None, generators(len(views) * trials))
    while not attack.done(state):
        attack.step(None, state)
    return attack.result(None, state)


def assert_same_attack(alone, together, view, client):
    """Equal up to float order: a sign step can flip on a near-zero gradient, so compare what
    users read (final loss and PSNR), not every pixel."""
    assert together.iterations == alone.iterations
    assert torch.equal(together.labels, alone.labels)
    assert together.final_loss == pytest.approx(alone.final_loss, rel=1e-3, abs=1e-5)
    assert psnr(view, together.images, client) == pytest.approx(psnr(view, alone.images, client), abs=0.05)


def test_stacked_trials_equal_the_trials_run_one_by_one():
    view, client = victim(seed=3, batch_size=2, known_labels=True)
    alone = [build_attack("ig", iterations=ITERATIONS).reconstruct(view, g) for g in generators(3)]
    together = stacked_run([view], trials=3)
    assert len(together) == 3
    for a, b in zip(alone, together):
        assert_same_attack(a, b, view, client)
    identical = sum(torch.equal(a.images, b.images) for a, b in zip(alone, together))
    assert identical >= 1  # most lanes are bit-identical; tolerance is for the odd sign flip


def test_each_stacked_trial_keeps_its_best_restart():
    view, client = victim(seed=4, batch_size=1, known_labels=True)
    alone = [build_attack("ig", iterations=ITERATIONS, restarts=3).reconstruct(view, g) for g in generators(2)]
    together = stacked_run([view], trials=2, restarts=3)
    for a, b in zip(alone, together):
        assert b.iterations == 3 * ITERATIONS
        assert_same_attack(a, b, view, client)


def with_batch_norm(view, client):
    """The view with a small ConvNet (BatchNorm in train mode: per-lane running statistics)."""
    model = MODELS["convnet"].build(parse_options(MODELS["convnet"].options, {"width": 2}), digits().info).train()
    inputs, labels = view.normalization.normalize(client.images), client.labels
    gradients = torch.autograd.grad(torch.nn.functional.cross_entropy(model(inputs), labels), list(model.parameters()))
    return dataclasses.replace(view, model=model, update=SharedUpdate(tuple(g.detach() for g in gradients),
                                                                     len(labels)))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_packed_cells_with_their_own_weights_equal_each_cell_alone(batch_norm):
    victims = [victim(seed=seed, batch_size=2, known_labels=True) for seed in (5, 6)]
    views = [with_batch_norm(v, c) if batch_norm else v for v, c in victims]
    assert views[0].model is not views[1].model
    trials = 2
    alone = [build_attack("ig", iterations=ITERATIONS).reconstruct(views[lane // trials], g)
             for lane, g in enumerate(generators(len(views) * trials))]
    together = stacked_run(views, trials=trials)
    for lane, (a, b) in enumerate(zip(alone, together)):
        view, client = views[lane // trials], victims[lane // trials][1]
        assert_same_attack(a, b, view, client)


def test_stacked_lanes_simulate_the_clients_local_steps():
    view, client = victim(seed=7, batch_size=2, known_labels=True)
    fedavg = LOCAL_TRAININGS["fedavg"]
    view = copy.copy(view)
    object.__setattr__(view, "local_training", fedavg.build(parse_options(fedavg.options, {
        "local_steps": 2, "minibatch_size": 1, "lr": 0.1}), 2))
    alone = [build_attack("ig", iterations=ITERATIONS).reconstruct(view, g) for g in generators(2)]
    for a, b in zip(alone, stacked_run([view], trials=2)):
        assert_same_attack(a, b, view, client)


def test_views_of_different_architectures_do_not_stack():
    view, _ = victim(seed=1)
    other = copy.copy(view)
    info = MODELS["convnet"]
    object.__setattr__(other, "model", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)))
    with pytest.raises(NotStackable, match="architecture"):
        StackedInvertingGradients(options(), [view, other], 1)
    assert info  # the registry is importable alongside


def test_a_model_with_active_dropout_runs_its_trials_one_by_one():
    with_dropout = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    assert not stackable_model(with_dropout.train())
    assert stackable_model(with_dropout.eval())
    assert stackable_model(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.0)).train())


GRID = """
name = "stacked"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["ig"]
batch_size = [1]
trials = [3]
seed = [0]

[attacks.ig]
iterations = 20
"""


def _run_cell(write_grid, tmp_path, name, stack):
    cell = load_grid(write_grid(GRID)).cells[0]
    context = CellContext(out_root=tmp_path / name, grid_name="stacked", data_root=None, device="cpu",
                          provenance=current_provenance(), stack_trials=stack)
    return cell, context


def _row(context, cell):
    return pq.read_table(OutputDir(context.out_root).done_result(cell.cell_id)).to_pylist()[0]


def test_a_cell_with_stacked_trials_reports_what_one_by_one_reports(write_grid, tmp_path, monkeypatch):
    chunks: list[int] = []
    real_init = StackedInvertingGradients.__init__

    def spy(self, options, views, trials_per_view):
        chunks.append(trials_per_view)
        real_init(self, options, views, trials_per_view)

    monkeypatch.setattr(StackedInvertingGradients, "__init__", spy)
    rows, chunked = {}, {}
    for stack in (1, 2, 3):  # 2: a chunk of two trials, then one trial alone
        cell, context = _run_cell(write_grid, tmp_path, f"stack{stack}", stack)
        chunks.clear()
        execute_cell(cell, context)
        rows[stack], chunked[stack] = _row(context, cell), list(chunks)
    assert chunked == {1: [], 2: [2], 3: [3]}
    assert {stack: row["trials_stacked"] for stack, row in rows.items()} == {1: 1, 2: 2, 3: 3}
    for stack in (2, 3):
        assert rows[stack]["status"] == "done"
        assert rows[stack]["attack_iterations"] == rows[1]["attack_iterations"] == 60
        for alone, together in zip(rows[1]["psnr_per_sample"], rows[stack]["psnr_per_sample"]):
            assert together == pytest.approx(alone, abs=0.05)


@pytest.fixture
def stop_after(monkeypatch):
    clear_stop()
    yield stop_at_the_nth_step(monkeypatch, StackedInvertingGradients)
    clear_stop()


def test_a_stopped_stacked_cell_resumes_and_equals_an_uninterrupted_run(write_grid, tmp_path, stop_after):
    cell, uninterrupted = _run_cell(write_grid, tmp_path, "whole", 3)
    execute_cell(cell, uninterrupted)
    cell, stopped = _run_cell(write_grid, tmp_path, "stopped", 3)
    stop_after(7)
    with pytest.raises(Interrupted):
        execute_cell(cell, stopped)
    assert OutputDir(stopped.out_root).checkpoint(cell.cell_id).is_file()
    clear_stop()
    stop_after(None)
    execute_cell(cell, stopped)
    whole, resumed = _row(uninterrupted, cell), _row(stopped, cell)
    assert resumed["resumed_at_iteration"] == [7]
    for key in ("psnr_per_sample", "final_loss", "attack_iterations", "recovered_labels"):
        assert resumed[key] == whole[key], key
    assert not math.isnan(resumed["psnr"])


def test_by_default_the_measured_rule_decides_whether_a_cells_trials_stack(write_grid, tmp_path, monkeypatch):
    import evalgrid.evaluation.packing as packing

    for name, measured, expected in (("unmeasured", packing.MEASURED, 1),  # the CPU measured 0.9x: one by one
                                     ("pays", (packing.Measurement("cpu", packing.TRIALS, 2.0, "2026-12-07", "t"),), 3)):
        monkeypatch.setattr(packing, "MEASURED", measured)
        cell, context = _run_cell(write_grid, tmp_path, name, 0)  # 0: [run] stack_trials left at its default
        execute_cell(cell, context)
        assert _row(context, cell)["trials_stacked"] == expected
