"""The coverage grids (grids/coverage/*.toml) through the real CLI, at tiny scale: every
registered model, init, stage, local training, defense, attack, dataset and metric runs in at
least one cell, and every value changes what its cell computes (a new cell id and different
numbers), or is documented in its grid file, and tested here, not to.

Each grid file varies one factor (or a few, one at a time) around the shared tiny base
(``base.toml``). A registry entry that no coverage grid runs fails
``test_every_registered_value_is_covered``. The data, the torch cache and the checkpoint the
grids need are written by this module into temporary folders: tiny random copies in the real
formats (tests/fakedata.py), and weights with the right names and shapes but random values."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import evalgrid
import fakedata
from evalgrid.grid.cell import factor_label
from evalgrid.grid import Grid, load_grid

pytestmark = pytest.mark.slow

COVERAGE = Path(__file__).resolve().parent.parent / "grids" / "coverage"
CHECKPOINT = "resnet18-digits16.pt"  # inits.toml's checkpoint, next to the grid file
ATTACKED_OUTPUTS = ("final_loss", "psnr_per_sample", "ssim_per_sample", "recovered_labels")


# --------------------------------------------------------------------------- what each file covers


def _component_names(frame: pd.DataFrame, factor: str) -> set[str]:
    """The registry names a factor column holds (compositions count each member)."""
    names = set()
    for config in frame["config"]:
        value = json.loads(config)[factor]
        names.update(step["name"] for step in (value if isinstance(value, list) else [value]))
    return names


def _registry(factor: str) -> Callable[[], set[str]]:
    def names() -> set[str]:
        from evalgrid.grid.factors import FACTORS

        return set(FACTORS[factor].registry.names())
    return names


def _metric_names() -> set[str]:
    from evalgrid.catalogue import METRICS

    return set(METRICS.names())


@dataclass(frozen=True)
class Coverage:
    """A coverage grid: the registry it must exhaust, and what must change when a cell differs
    from the baseline cell (every varied factor at its first value) in one factor only."""

    file: str
    factor: str  # the factor whose registry the file exhausts ("metrics": the metric registry)
    required: Callable[[], set[str]]
    must_change: dict[str, tuple[str, ...]]  # varied factor -> columns that must differ from the baseline's
    same_as_baseline: dict[tuple[str, Any], str] = field(default_factory=dict)  # (factor, label) -> why not
    tied: tuple[str, ...] = ()  # factors that only follow another (each model's resolution)


COVERAGES = (
    # The architecture changes the gradient and what it reveals; most models also change the
    # parameter count (convnet_sok runs without bias: with it, it is convnet plus a dropout
    # layer that the default eval mode switches off, the same function).
    Coverage("models.toml", "model", _registry("model"),
             {"model": ("final_loss", "psnr_per_sample")}, tied=("resolution",)),
    # New weights, same architecture: the gradient and the reconstruction change.
    Coverage("inits.toml", "init", _registry("init"), {"init": ("final_loss", "psnr_per_sample")}),
    # Trained weights: a new gradient, and the round is recorded.
    Coverage("stages.toml", "stage", _registry("stage"),
             {"stage": ("final_loss", "psnr_per_sample", "stage_round")}),
    Coverage("local_training.toml", "local_training", _registry("local_training"),
             {"local_training": ("final_loss", "psnr_per_sample"), "knows_local_config": ATTACKED_OUTPUTS},
             same_as_baseline={
                 ("local_training", "fedsgd(share_bn_statistics=True)"):
                     "the BN statistics ride along with unchanged gradients, and IG does not read them",
                 ("knows_local_config", False):
                     "under FedSGD the uninformed attacker's assumption (one full-batch gradient) is the truth",
             }),
    # The server receives another update (secure aggregation: the mean of two clients').
    Coverage("defenses.toml", "defense", _registry("defense"), {"defense": ("final_loss", "psnr_per_sample")}),
    # Another objective and optimiser on the same update.
    Coverage("attacks.toml", "attack", _registry("attack"), {"attack": ("final_loss", "psnr_per_sample")},
             tied=("prior",)),
    Coverage("datasets.toml", "dataset", _registry("dataset"),
             {"dataset": ("final_loss", "psnr_per_sample"),
              "resolution": ("final_loss", "psnr_per_sample", "input_dimension")}),
    # labels: label_acc is NaN when the labels are given (the reconstruction itself may equal
    # the baseline's when the inferred labels are right); trials: one more list of per-sample
    # values and twice the steps; gradient source: fewer gradients matched, another objective.
    Coverage("labels_trials_metrics.toml", "metrics", _metric_names,
             {"labels": ("label_acc",), "trials": ("psnr_per_sample", "attack_iterations"),
              "gradient_source": ("gradient_parameters", "final_loss")}),
)
FILES = [coverage.file for coverage in COVERAGES]


def test_every_coverage_grid_file_is_tested():
    assert sorted(p.name for p in COVERAGE.glob("*.toml")) == sorted([*FILES, "base.toml"])


# --------------------------------------------------------------------------- running the grids


@dataclass(frozen=True)
class Outcome:
    grid: Grid
    out: Path
    exit_code: int
    output: str
    frame: pd.DataFrame  # indexed by cell_id
    labels: dict[str, dict[str, Any]]  # cell_id -> factor labels, as the grid writes them
    plan_before: str  # `evalgrid plan GRID` before the run
    plan_after: str  # `evalgrid plan GRID --out DIR` after it

    def done(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] == "done"]

    def varied(self, cell_id: str) -> dict[str, Any]:
        """The labels of the factors the grid lists, for messages."""
        return {name: self.labels[cell_id][name] for name in self.grid.varied}

    def baseline_labels(self) -> dict[str, Any]:
        return {name: _label(self.grid.values[name][0]) for name in self.grid.varied}

    def cell(self, **labels: Any) -> pd.Series:
        """The one cell whose factor labels include ``labels``."""
        found = [cell_id for cell_id, own in self.labels.items() if all(own[k] == v for k, v in labels.items())]
        assert len(found) == 1, f"{len(found)} cells match {labels}"
        row = self.frame.loc[found[0]]
        error = f"{row['error_type']}: {row['error_message']}"
        assert row["status"] == "done", f"cell {found[0]} ({labels}) failed: {error}"
        return row


def _label(value: Any) -> Any:
    return factor_label(value)


def _write_inputs(root: Path) -> None:
    """Everything the coverage grids read: the grid files (copied, so the checkpoint can sit
    next to them), fake datasets, a fake torch cache, a checkpoint."""
    import torchvision

    from evalgrid.catalogue import DATASETS
    from evalgrid.catalogue import MODELS

    grids = root / "grids"
    shutil.copytree(COVERAGE, grids)
    data = root / "data"
    fakedata.write_tiny_mnist(data)
    fakedata.write_tiny_svhn(data)
    fakedata.write_tiny_cifar10(data)
    fakedata.write_tiny_cifar100(data)
    fakedata.write_image_folder(data / "faces", classes=("a", "b"), per_class=3, size=20)
    fakedata.write_tiny_imagenet_val(data, per_class=3)  # test_fraction 0.2 of 3 leaves a test image per class
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(1)  # random stand-ins for torchvision's ImageNet weights: same names and shapes
        torch.save(torchvision.models.resnet18().state_dict(), checkpoints / "resnet18-f37072fd.pth")
        torch.save(torchvision.models.alexnet().state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
        digits = DATASETS["digits"].describe(DATASETS["digits"].options(resolution=16))
        resnet18 = MODELS["resnet18"]
        torch.save(resnet18.build(resnet18.options(), digits).state_dict(), grids / CHECKPOINT)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """outcome(file) -> the Outcome of `evalgrid run` on that coverage grid (run once per module)."""
    from evalgrid.cli import main

    root = tmp_path_factory.mktemp("coverage")
    _write_inputs(root)
    cache: dict[str, Outcome] = {}

    def invoke(*args: Any):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    def get(file: str) -> Outcome:
        if file not in cache:
            grid_file, out = root / "grids" / file, root / "runs" / Path(file).stem
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("TORCH_HOME", str(root / "torch"))
                patch.setattr(torch.hub, "_hub_dir", None)  # torch.hub.set_dir would win over TORCH_HOME
                patch.setenv("EVALGRID_DATA", str(root / "data"))
                before = invoke("plan", grid_file)
                assert before.exit_code == 0, before.output
                run = invoke("run", grid_file, "--out", out)
                after = invoke("plan", grid_file, "--out", out)
            grid = load_grid(grid_file)
            frame = evalgrid.load(out).set_index("cell_id", drop=False)
            cache[file] = Outcome(grid, out, run.exit_code, run.output, frame,
                                  {cell.cell_id: cell.factor_labels() for cell in grid.cells},
                                  before.output, after.output)
        return cache[file]

    return get


# --------------------------------------------------------------------------- every file


@pytest.mark.parametrize("file", FILES)
def test_every_cell_is_done(outcome, file):
    result = outcome(file)
    failed = result.frame[result.frame["status"] != "done"]
    details = "\n".join(f"  {row.cell_id} {result.varied(row.cell_id)}: {row.error_type}: {row.error_message}"
                        for row in failed.itertuples())
    assert failed.empty, f"{len(failed)} cell(s) of {file} failed:\n{details}"
    assert result.exit_code == 0, result.output
    assert set(result.frame.index) == set(result.labels), "one row per cell of the grid"


@pytest.mark.parametrize("file", FILES)
def test_every_registered_value_is_covered(outcome, file):
    coverage = next(c for c in COVERAGES if c.file == file)
    result = outcome(file)
    if coverage.factor == "metrics":
        present = set(result.grid.metrics)
    else:
        present = _component_names(result.frame, coverage.factor)
    missing = coverage.required() - present
    assert not missing, f"{file} runs no cell with {coverage.factor} {sorted(missing)}: add them to the grid"


@pytest.mark.parametrize("file", FILES)
def test_cell_ids_are_distinct(outcome, file):
    result = outcome(file)
    assert len(set(result.labels)) == len(result.grid.cells) == len(result.frame)


def _same(first: Any, second: Any) -> bool:
    """Equal numbers, NaN equal to NaN, lists of lists compared element-wise and by shape."""
    def array(value: Any) -> np.ndarray:
        if isinstance(value, (list, tuple, np.ndarray)) and len(value) and isinstance(value[0], (list, np.ndarray)):
            return np.array([np.asarray(part, dtype=float) for part in value])
        return np.asarray(value, dtype=float)

    a, b = array(first), array(second)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("file", FILES)
def test_each_value_changes_what_its_cell_computes(outcome, file):
    """Cells one factor away from the baseline differ from it in that factor's columns, or,
    where the grid file says why, compute exactly what the baseline computes."""
    coverage = next(c for c in COVERAGES if c.file == file)
    result = outcome(file)
    baseline = result.baseline_labels()
    base_id = next(i for i, own in result.labels.items() if all(own[k] == v for k, v in baseline.items()))
    base = result.frame.loc[base_id]
    assert base["status"] == "done", "the baseline cell failed: see test_every_cell_is_done"
    problems, compared = [], set()
    for cell_id, own in result.labels.items():
        changed = [k for k in baseline if own[k] != baseline[k] and k not in coverage.tied]
        if len(changed) != 1 or result.frame.loc[cell_id, "status"] != "done":
            continue  # the baseline, cells two factors away, and failures (reported by test_every_cell_is_done)
        factor, row = changed[0], result.frame.loc[cell_id]
        compared.add((factor, own[factor]))
        if (factor, own[factor]) in coverage.same_as_baseline:
            different = [c for c in ATTACKED_OUTPUTS if not _same(row[c], base[c])]
            if different:
                problems.append(f"{factor} = {own[factor]} ({cell_id}) was expected to compute what the baseline "
                                f"does ({coverage.same_as_baseline[(factor, own[factor])]}) but changed {different}")
            continue
        unchanged = [c for c in coverage.must_change[factor] if _same(row[c], base[c])]
        if unchanged:
            problems.append(f"{factor} = {own[factor]} ({cell_id}) left {unchanged} as the baseline {base_id} "
                            f"({baseline}) has them: {[row[c] for c in unchanged]}")
    failed = {(k, own[k]) for cell_id, own in result.labels.items() for k in baseline
              if result.frame.loc[cell_id, "status"] != "done"}
    expected = {(k, _label(v)) for k in coverage.must_change for v in result.grid.values[k][1:]}
    assert not expected - compared - failed, f"no cell one factor away from the baseline for {expected - compared}"
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- models


def test_models_differ_in_size_and_take_batches_of_their_resolution(outcome):
    frame = outcome("models.toml").done()
    sizes = frame.set_index(frame["model"].astype(str))["model_parameters"]
    # convnet_sok = convnet + a dropout layer (no parameters); without bias it loses the biases.
    assert sizes["convnet_sok(bias=False, width=4)"] < sizes["convnet(width=4)"]
    assert sizes.is_unique, sizes.sort_values().to_string()
    assert sizes["resnet10(width=2)"] > 3.9 * sizes["resnet10"], "twice the channels: about 4x the parameters"
    assert sizes["resnet34"] > sizes["resnet18"] > sizes["resnet10"]
    assert (frame["input_dimension"] == 2 * 1 * frame["resolution"] ** 2).all(), "B x C x H x W, digits: C = 1"


# --------------------------------------------------------------------------- inits


def test_inits_change_the_weights_not_the_architecture(outcome):
    frame = outcome("inits.toml").done()
    assert frame["model_parameters"].nunique() == 1 and frame["final_loss"].is_unique


# --------------------------------------------------------------------------- stages


def test_both_rounds_come_from_one_training_setup(outcome):
    result = outcome("stages.toml")
    assert re.search(r"^2 stage trainings, 0 cached", result.plan_before, re.M), result.plan_before
    assert re.search(r"^2 stage trainings, 2 cached", result.plan_after, re.M), result.plan_after
    setups = [p for p in (result.out / "stages").iterdir() if p.is_dir()]
    assert len(setups) == 1, "rounds 1 and 2 share one setup folder"
    assert sorted(p.name for p in setups[0].glob("round-*")) == [
        "round-1.json", "round-1.pt", "round-2.json", "round-2.pt"]
    round_2 = json.loads((setups[0] / "round-2.json").read_text())
    assert round_2["resumed_from"] == 1, "round 2 was trained from the cached round 1, not from scratch"


def test_stages_record_their_round_and_training_raises_accuracy(outcome):
    result = outcome("stages.toml")
    rounds = {stage: result.cell(stage=stage) for stage in ("initial", "fedavg(round=1)", "fedavg(round=2)")}
    assert [row["stage_round"] for row in rounds.values()] == [0, 1, 2]
    assert rounds["fedavg(round=2)"]["accuracy"] >= rounds["initial"]["accuracy"] + 0.1


# --------------------------------------------------------------------------- local training


def test_local_training_counts_its_steps(outcome):
    result = outcome("local_training.toml")
    expected = {"fedsgd": 1, "fedavg(local_steps=3)": 3, "fedavg(local_epochs=2, minibatch_size=1)": 4,
                "fedsgd(bn_mode='train')": 1, "fedsgd(share_bn_statistics=True)": 1}  # U = 2 epochs x N/b = 2/1
    for training, steps in expected.items():
        for knows in (True, False):
            assert result.cell(local_training=training, knows_local_config=knows)["local_steps"] == steps


def test_knowing_the_local_training_matters_under_fedavg_only(outcome):
    """FedSGD: the uninformed attacker's assumption is the truth, so both cells compute the
    same; FedAvg: assuming one gradient step when there were several is a different attack."""
    result = outcome("local_training.toml")
    for training in map(str, result.grid.values["local_training"]):
        informed = result.cell(local_training=training, knows_local_config=True)
        uninformed = result.cell(local_training=training, knows_local_config=False)
        assert informed["cell_id"] != uninformed["cell_id"]
        if training.startswith("fedavg"):
            assert not _same(informed["final_loss"], uninformed["final_loss"]), training
        else:
            assert all(_same(informed[c], uninformed[c]) for c in ATTACKED_OUTPUTS), training


# --------------------------------------------------------------------------- defenses


def test_only_the_dp_defenses_report_an_epsilon(outcome):
    frame = outcome("defenses.toml").done()
    with_dpsgd = frame["defense"].astype(str).str.contains("dpsgd|adaptive_dp")
    assert with_dpsgd.sum() == 3
    assert np.isfinite(frame.loc[with_dpsgd, "epsilon"]).all() and (frame.loc[with_dpsgd, "epsilon"] > 0).all()
    assert frame.loc[~with_dpsgd, "epsilon"].isna().all()


def test_secure_aggregation_scores_the_attack_against_every_clients_images(outcome):
    result = outcome("defenses.toml")
    alone, aggregated = result.cell(defense="none"), result.cell(defense="secure_aggregation(clients=2)")
    assert aggregated["input_dimension"] == 2 * alone["input_dimension"]
    assert len(aggregated["true_labels"]) == len(aggregated["psnr_per_sample"][0]) == 4  # K x B


# --------------------------------------------------------------------------- attacks


def test_every_attack_infers_labels_and_ends_with_a_finite_loss(outcome):
    frame = outcome("attacks.toml").done()
    assert np.isfinite(frame["final_loss"]).all()
    assert frame["label_acc"].between(0, 1).all(), "labels are inferred in attacks.toml"
    assert (frame["attack_iterations"] >= 2).all()


# --------------------------------------------------------------------------- labels, trials, metrics


def test_known_labels_are_the_true_ones_and_inferred_ones_are_scored(outcome):
    result = outcome("labels_trials_metrics.toml")
    known, inferred = result.cell(labels="known", trials=1, gradient_source="all"), result.cell(labels="inferred")
    assert math.isnan(known["label_acc"]) and list(known["recovered_labels"]) == list(known["true_labels"])
    assert 0 <= inferred["label_acc"] <= 1


def test_a_second_trial_adds_one_list_per_sample_metric(outcome):
    result = outcome("labels_trials_metrics.toml")
    one, two = result.cell(trials=1, labels="known", gradient_source="all"), result.cell(trials=2)
    for metric in ("psnr", "ssim", "lpips"):
        per_sample = two[f"{metric}_per_sample"]
        assert len(per_sample) == 2 and all(len(trial) == 2 for trial in per_sample)
        assert _same(per_sample[0], one[f"{metric}_per_sample"][0]), "trial 0 starts from the same dummy images"
        assert not _same(per_sample[1], per_sample[0])
    assert two["attack_iterations"] == 2 * one["attack_iterations"]


def test_one_modules_gradient_is_a_part_of_the_model(outcome):
    result = outcome("labels_trials_metrics.toml")
    whole = result.cell(gradient_source="all", labels="known", trials=1)
    conv0 = result.cell(gradient_source="model.conv0")
    assert whole["gradient_parameters"] == whole["model_parameters"] == conv0["model_parameters"]
    assert conv0["gradient_parameters"] == 4 * 1 * 3 * 3 + 4  # conv0 of ConvNet width 4 on 1 channel, with bias


def test_every_metric_has_a_value_in_its_range(outcome):
    frame = outcome("labels_trials_metrics.toml").done()
    for metric in ("psnr", "ssim", "lpips", "brr", "wsrr", "igsa", "accuracy", "defended_accuracy"):
        assert frame[metric].notna().all(), metric
    assert frame["lpips"].between(0, 2).all() and frame["brr"].between(0, 1).all()
    assert frame["wsrr"].between(0, 1).all() and (frame["igsa"] > 0).all()
    assert frame["accuracy"].between(0, 1).all() and frame["defended_accuracy"].between(0, 1).all()
    assert (frame["accuracy"] != frame["defended_accuracy"]).all(), "training with DP-SGD changes the model"


def test_one_stage_training_serves_every_cell(outcome):
    """The attacked model and the DP-SGD-trained one: two trainings for all four cells."""
    result = outcome("labels_trials_metrics.toml")
    assert re.search(r"^2 stage trainings, 0 cached", result.plan_before, re.M), result.plan_before
    setups = [p for p in (result.out / "stages").iterdir() if p.is_dir()]
    assert len(setups) == 2 and all(sorted(p.name for p in s.glob("round-*")) == ["round-1.json", "round-1.pt"]
                                    for s in setups)


# --------------------------------------------------------------------------- datasets


DATA_SHAPES = {"digits": (1, 16), "photos": (3, 16), "mnist": (1, 28), "svhn": (3, 32), "cifar10": (3, 32), "cifar100": (3, 32),
               "imagefolder": (3, 16), "imagenet": (3, 32)}  # channels, side at resolution 0 (datasets.toml)


def test_datasets_give_batches_of_their_shape(outcome):
    result = outcome("datasets.toml")
    for row in result.done().itertuples():
        channels, side = DATA_SHAPES[json.loads(row.config)["dataset"]["name"]]
        side = row.resolution or side
        assert row.input_dimension == 2 * channels * side * side, (row.dataset, row.resolution)
    assert set(DATA_SHAPES) == _registry("dataset")()


def test_more_classes_make_a_bigger_classifier(outcome):
    result = outcome("datasets.toml")
    cifar10, cifar100 = result.cell(dataset="cifar10", resolution=0), result.cell(dataset="cifar100", resolution=0)
    assert cifar100["model_parameters"] > cifar10["model_parameters"]
