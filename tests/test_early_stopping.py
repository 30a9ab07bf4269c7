"""Early stopping: a trial ends once ``early_stop_window`` steps in a row have not improved the
attack's loss by more than ``early_stop_tolerance`` (relative); off by default, where every
attack computes exactly what it did without the option; resumable; reported as iterations saved;
and invisible in the ids of cells that do not use it."""

from __future__ import annotations

import io
import json
import math
import signal
from dataclasses import dataclass

import pyarrow.parquet as pq
import pytest
import torch

import evalgrid
from attacking import build_attack, run_to_end, seeded
from evalgrid.attacks.stopping import EarlyStopping
from evalgrid.grid import load_grid
from evalgrid.catalogue.options import canonical_options, option
from test_label_rules import victim


def stops(rule: EarlyStopping, losses: list[float]) -> list[bool]:
    """The rule's verdict after each of ``losses``, from a fresh start."""
    best, since_best, verdicts = math.inf, 0, []
    for loss in losses:
        best, since_best, stop = rule.update(best, since_best, loss)
        verdicts.append(stop)
    return verdicts


def first_stop(rule: EarlyStopping, losses: list[float]) -> int | None:
    """The number of steps after which the rule stops, or None."""
    return next((i + 1 for i, stop in enumerate(stops(rule, losses)) if stop), None)


# --- the rule ---------------------------------------------------------------------------------

def test_the_first_loss_is_always_an_improvement():
    assert EarlyStopping(1, 0.5).update(math.inf, 0, 123.0) == (123.0, 0, False)
    assert EarlyStopping(1, 0.0).update(math.inf, 0, 0.0) == (0.0, 0, False)


def test_a_decrease_just_above_the_tolerance_is_an_improvement_and_just_below_is_not():
    rule = EarlyStopping(window=5, tolerance=0.25)
    assert rule.update(1.0, 3, 0.74) == (0.74, 0, False)
    assert rule.update(1.0, 3, 0.76) == (1.0, 4, False)
    assert rule.update(1.0, 3, 0.75) == (1.0, 4, False), "a decrease of exactly the tolerance is not enough"


def test_the_tolerance_is_relative_to_the_best_losss_magnitude():
    rule = EarlyStopping(window=5, tolerance=0.25)
    assert rule.update(100.0, 0, 74.0)[0] == 74.0 and rule.update(100.0, 0, 76.0)[0] == 100.0
    assert rule.update(-4.0, 0, -5.5)[0] == -5.5 and rule.update(-4.0, 0, -4.5)[0] == -4.0


def test_it_stops_after_exactly_window_steps_without_improvement():
    assert stops(EarlyStopping(window=3, tolerance=0.1), [1.0, 1.0, 0.95, 1.2, 0.5, 0.5, 0.5, 0.5]) == [
        False, False, False, True, False, False, False, True]


def test_an_improvement_resets_the_count():
    assert first_stop(EarlyStopping(window=2, tolerance=0.0), [4.0, 4.0, 3.0, 3.0, 2.0, 2.0, 2.0]) == 7


def test_with_tolerance_zero_any_strict_decrease_improves():
    rule = EarlyStopping(window=1, tolerance=0.0)
    assert rule.update(1.0, 0, 1.0 - 1e-12)[:2] == (1.0 - 1e-12, 0)
    assert rule.update(1.0, 0, 1.0) == (1.0, 1, True)


def test_slow_steady_progress_adds_up_against_the_best():
    # each step gains 5%, under the 10% tolerance, but two steps together gain more than 10%
    assert stops(EarlyStopping(window=2, tolerance=0.1), [1.0, 0.95, 0.89, 0.85, 0.80]) == [False] * 5


def test_window_zero_never_stops():
    rule = EarlyStopping(window=0, tolerance=0.5)
    assert not rule.enabled and stops(rule, [1.0] * 1000) == [False] * 1000 and not rule.stopped(10**9)


# --- the attacks ------------------------------------------------------------------------------

VIEW = victim(0, [1, 2], known_labels=True, side=8)[0]
# Short runs of each attack on a tiny problem (GradInversion needs the BN statistics VIEW shares).
QUICK = {"ig": {"iterations": 30, "tv": 1e-4}, "fedleak": {"iterations": 30, "lr": 0.3},
         "dlg": {"iterations": 12, "lbfgs_max_iter": 4},
         "gradinversion": {"iterations": 20, "restarts": 2}}


@pytest.mark.parametrize("name", ["ig", "fedleak"])
def test_an_attack_stops_early_once_its_loss_plateaus(name):
    # a step size so small that nothing moves: the first step sets the best, the next 3 do not improve
    attack = build_attack(name, iterations=40, lr=1e-7, init="rand", early_stop_window=3)
    result = attack.reconstruct(VIEW, seeded())
    assert result.iterations == 4 and attack.planned_iterations() == 40


def test_an_inverting_gradients_restart_ends_early_and_the_next_one_runs():
    attack = build_attack("ig", iterations=40, restarts=3, lr=1e-7, init="rand", early_stop_window=3)
    state = run_to_end(attack, VIEW)
    assert state.restart == 3 and state.finished_iterations == 12
    assert attack.result(VIEW, state).iterations == 12 and attack.planned_iterations() == 120


@pytest.fixture
def recorded_losses(monkeypatch):
    """The loss of every step that early stopping saw, in order."""
    losses: list[float] = []
    update = EarlyStopping.update

    def recording(self, best, since_best, loss):
        losses.append(loss)
        return update(self, best, since_best, loss)

    monkeypatch.setattr(EarlyStopping, "update", recording)
    return losses


@pytest.mark.parametrize("name", ["ig", "fedleak", "dlg", "gradinversion"])
def test_an_early_stop_cuts_the_full_run_at_the_step_the_rule_names(name, recorded_losses):
    options = QUICK[name]
    tracked = build_attack(name, **options, early_stop_window=10**6)  # tracks the loss, never stops
    full = tracked.reconstruct(VIEW, seeded())
    rule = EarlyStopping(window=2, tolerance=0.02)
    expected = first_stop(rule, list(recorded_losses))  # (the rule adds to recorded_losses as it runs)
    assert expected is not None and expected < options["iterations"], "pick options under which it stops early"

    stopped = build_attack(name, **options, early_stop_window=rule.window, early_stop_tolerance=rule.tolerance)
    result = stopped.reconstruct(VIEW, seeded())
    restarts = options.get("restarts", 1) if name == "gradinversion" else 1
    assert result.iterations == expected * restarts < full.iterations
    # the same trajectory, cut at that step
    cut = build_attack(name, **options)
    state = cut.start(VIEW, seeded())
    for _ in range(expected):
        cut.step(VIEW, state)
    # (IG's result needs a finished trial: its one trial's images are the running ones)
    images = state.images.detach() if name == "ig" else cut.result(VIEW, state).images
    assert torch.equal(result.images, images)


@pytest.mark.parametrize("name", ["ig", "fedleak", "dlg", "gradinversion"])
def test_with_window_zero_an_attack_computes_exactly_what_it_did_without_the_option(name):
    options = QUICK[name]
    default = build_attack(name, **options)
    assert default.options.early_stop_window == 0
    plain = default.reconstruct(VIEW, seeded())
    tolerance_only = build_attack(name, **options, early_stop_tolerance=0.5).reconstruct(VIEW, seeded())
    never_stops = build_attack(name, **options, early_stop_window=10**6).reconstruct(VIEW, seeded())
    for other in (tolerance_only, never_stops):
        assert torch.equal(other.images, plain.images) and other.final_loss == plain.final_loss
        assert other.iterations == plain.iterations == default.planned_iterations()


@pytest.mark.parametrize("name", ["ig", "fedleak", "dlg", "gradinversion"])
@pytest.mark.parametrize("where", ["early", "one step before it stops"])
def test_a_resumed_run_stops_at_the_same_iteration_as_an_uninterrupted_one(name, where):
    options = {**QUICK[name], "early_stop_window": 2, "early_stop_tolerance": 0.02}
    if name == "ig":
        options["restarts"] = 2  # the stop comes in the second restart
    attack = build_attack(name, **options)
    straight = attack.reconstruct(VIEW, seeded())
    steps = straight.iterations // (options["restarts"] if name == "gradinversion" else 1)
    interrupt_at = 3 if where == "early" else steps - 1
    state = attack.start(VIEW, seeded())
    for _ in range(interrupt_at):
        attack.step(VIEW, state)
    assert not attack.done(state)
    if where != "early":
        assert state.since_best == 1, "the checkpoint holds a count under way"
    buffer = io.BytesIO()
    torch.save(attack.snapshot(state), buffer)
    buffer.seek(0)
    resumed = attack.restore(VIEW, seeded(), torch.load(buffer, weights_only=True))
    while not attack.done(resumed):
        attack.step(VIEW, resumed)
    result = attack.result(VIEW, resumed)
    assert result.iterations == straight.iterations < attack.planned_iterations()
    assert torch.equal(result.images, straight.images) and result.final_loss == straight.final_loss


def test_an_inverting_gradients_checkpoint_from_before_early_stopping_resumes_with_the_right_count():
    attack = build_attack("ig", iterations=6, restarts=2)
    state = attack.start(VIEW, seeded())
    for _ in range(8):  # into the second restart
        attack.step(VIEW, state)
    saved = {k: v for k, v in attack.snapshot(state).items() if k not in ("finished_iterations", "best_loss",
                                                                          "since_best")}
    resumed = attack.restore(VIEW, seeded(), saved)
    while not attack.done(resumed):
        attack.step(VIEW, resumed)
    assert attack.result(VIEW, resumed).iterations == 12


# --- a real run: the reported columns and a resume through the cell's checkpoint ----------------

GRID = """
name = "early-stop"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["idlg", { name = "ig", early_stop_window = 2 }]
batch_size = [1]
labels = ["known"]
trials = [2]
seed = [0]

[attacks.idlg]
iterations = 3
lbfgs_max_iter = 2

[attacks.ig]
iterations = 20
early_stop_tolerance = 1.0  # nothing after the first step improves by 100%: each trial stops after 3 steps

[run]
threads_per_worker = 1
"""


def test_a_run_reports_the_iterations_run_and_saved(write_grid, cli, tmp_path):
    result = cli("run", write_grid(GRID), "--out", tmp_path / "out", "--executor", "debug")
    assert result.exit_code == 0, result.output
    frame = evalgrid.load(tmp_path / "out")
    rows = {str(row["attack"]): row for _, row in frame.iterrows()}
    assert frame["attack_iterations_saved"].dtype == "int64"
    assert rows["ig(early_stop_window=2)"]["attack_iterations"] == 2 * 3
    assert rows["ig(early_stop_window=2)"]["attack_iterations_saved"] == 2 * 20 - 2 * 3
    assert rows["idlg"]["attack_iterations"] == 2 * 3 and rows["idlg"]["attack_iterations_saved"] == 0


RESUME_GRID = """
name = "early-stop-resume"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = [{ name = "ig", restarts = 2, iterations = 30, early_stop_window = 2, early_stop_tolerance = 0.02 }]
batch_size = [1]
labels = ["known"]
trials = [1]
seed = [0]
"""


def test_a_cell_stopped_and_resumed_stops_early_where_an_uninterrupted_one_does(write_grid, tmp_path, monkeypatch):
    from evalgrid.attacks.inverting_gradients import InvertingGradients
    from evalgrid.evaluation.context import CellContext
    from evalgrid.evaluation.pipeline import execute_cell
    from evalgrid.launch.provenance import current_provenance
    from evalgrid.evaluation.checkpoint import Interrupted, clear_stop, request_stop
    from evalgrid.store.layout import OutputDir

    grid = load_grid(write_grid(RESUME_GRID))
    cell = grid.cells[0]

    def context(name):
        return CellContext(out_root=tmp_path / name, grid_name=grid.name, data_root=None, device="cpu",
                           provenance=current_provenance())

    def row(ctx):
        return pq.read_table(OutputDir(ctx.out_root).done_result(cell.cell_id)).to_pylist()[0]

    straight = context("straight")
    execute_cell(cell, straight)
    uninterrupted = row(straight)
    assert 0 < uninterrupted["attack_iterations_saved"], "the cell must stop early for this test to mean anything"

    steps, real_step = {"count": 0}, InvertingGradients.step
    stop_at = uninterrupted["attack_iterations"] // 2 + 1

    def step(self, view, state):
        real_step(self, view, state)
        steps["count"] += 1
        if steps["count"] == stop_at:
            request_stop(signal.SIGUSR2)

    monkeypatch.setattr(InvertingGradients, "step", step)
    stopped = context("stopped")
    clear_stop()
    try:
        with pytest.raises(Interrupted):
            execute_cell(cell, stopped)
    finally:
        clear_stop()
    execute_cell(cell, stopped)
    resumed = row(stopped)
    assert resumed["resumed_at_iteration"] == [stop_at]
    for column in ("attack_iterations", "attack_iterations_saved", "final_loss", "psnr", "psnr_per_sample"):
        assert resumed[column] == uninterrupted[column], column


# --- cell ids ---------------------------------------------------------------------------------

def test_a_cell_without_early_stopping_has_no_early_stop_keys_in_its_config(write_grid):
    cells = load_grid(write_grid(GRID)).cells
    configs = {str(cell.attack): json.loads(cell.canonical_json())["attack"]["options"] for cell in cells}
    assert not any(key.startswith("early_stop") for key in configs["idlg"])
    assert configs["ig(early_stop_window=2)"]["early_stop_window"] == 2
    assert configs["ig(early_stop_window=2)"]["early_stop_tolerance"] == 1.0


def test_writing_the_defaults_out_gives_the_same_cell_id(write_grid):
    spelled = GRID.replace("[attacks.idlg]", "[attacks.idlg]\nearly_stop_window = 0\nearly_stop_tolerance = 0.001")
    plain = load_grid(write_grid(GRID, "a.toml")).cells
    explicit = load_grid(write_grid(spelled, "b.toml")).cells
    assert [c.cell_id for c in plain] == [c.cell_id for c in explicit]


def test_an_option_marked_out_of_the_id_enters_it_only_when_set():
    @dataclass(frozen=True)
    class Options:
        kept: int = option(1)
        new: float = option(0.5, in_id_at_default=False)

    assert canonical_options(Options()) == {"kept": 1}
    assert canonical_options(Options(new=0.25)) == {"kept": 1, "new": 0.25}
