"""Stage reuse, counted: cells that share a stage model share one training, also when two
workers need it at once, and the count is of training events, not of the files they leave."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from evalgrid.cli import main
from evalgrid.grid.cell import Choice
from evalgrid.data.digits import DigitsOptions
from evalgrid.fl.stage import FedAvgStageOptions, StageRequest
from evalgrid.fl.stage import cached_rounds
from evalgrid.fl.stage_cache import global_model, training_events
from evalgrid.catalogue import INITS, MODELS
from evalgrid.store.layout import OutputDir

# 2 stage seeds x 2 attacks x 2 label settings: 8 cells, 2 stage models (one per seed). The seed
# comes first, so the first two cells, which the two workers start together, need the same stage.
SHARED_STAGES_GRID = """
name = "stage-reuse"
metrics = ["psnr"]

[factors]
dataset = [{{ name = "digits", resolution = 16 }}]
resolution = [16]
model = ["lenet"]
stage = [{{ name = "fedavg", round = 2 }}]
seed = [0, 1]
attack = [{attacks}]
labels = ["known", "inferred"]

[stages.fedavg]
clients = 2
clients_per_round = 2
local_epochs = 1
batch_size = 8
samples_per_client = 16
test_samples = 50

[attacks.idlg]
iterations = 2

[attacks.ig]
iterations = 2

[run]
executor = "local"
workers = 2
threads_per_worker = 1
"""
ATTACKS = ['"idlg"', '{ name = "ig", tv = 0.0 }']


def write_stage_grid(folder, attacks: list[str]):
    path = folder / "grid.toml"
    path.write_text(SHARED_STAGES_GRID.format(attacks=", ".join(attacks)))
    return path


def evalgrid(*args) -> object:
    """The real CLI, in-process (its local executor still runs cells in 2 worker processes)."""
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """DIR after running the 8-cell grid once (shared: the tests copy it before changing it)."""
    folder = tmp_path_factory.mktemp("stage-reuse")
    result = evalgrid("run", write_stage_grid(folder, ATTACKS), "--out", folder / "out")
    assert result.exit_code == 0, result.output
    return folder / "out"


@pytest.mark.slow
def test_eight_cells_sharing_two_stages_on_two_workers_train_each_stage_once(first_run):
    assert len(OutputDir(first_run).done_ids()) == 8
    events = training_events(first_run / "stages")
    assert len(events) == 2
    assert len({event["setup_key"] for event in events}) == 2  # one per stage, not one stage twice
    assert all(event["resumed_from"] == 0 and event["rounds_written"] == [2] for event in events)


@pytest.mark.slow
def test_new_cells_needing_only_cached_stages_train_none(first_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run, out)
    before = training_events(out / "stages")
    more = write_stage_grid(tmp_path, [*ATTACKS, '{ name = "ig", tv = 1e-4 }'])  # 4 new cells, the same 2 stages
    assert "2 stage trainings, 2 cached" in evalgrid("plan", more, "--out", out).output
    result = evalgrid("run", more, "--out", out, "--executor", "debug")  # in-process: no worker start-up
    assert result.exit_code == 0, result.output
    assert len(OutputDir(out).done_ids()) == 12
    assert training_events(out / "stages") == before


def test_a_training_that_runs_twice_is_counted_twice_though_it_leaves_one_file(tmp_path):
    options = FedAvgStageOptions(round=1, clients=2, clients_per_round=2, local_epochs=1, batch_size=8,
                                 samples_per_client=16, test_samples=20)
    request = StageRequest(Choice("digits", DigitsOptions(resolution=16)), 16,
                           Choice("lenet", MODELS["lenet"].options()), Choice("default", INITS["default"].options()),
                           Choice("fedavg", options), seed=0)
    global_model(request, None, tmp_path, "cpu")
    folder = tmp_path / request.setup_key()
    for cached in folder.glob("round-1.*"):  # as if the lock had let a second process miss the first's files
        cached.unlink()
    global_model(request, None, tmp_path, "cpu")
    assert cached_rounds(folder) == [1]
    events = training_events(tmp_path)
    assert [event["key"] for event in events] == [request.key()] * 2
    assert len({event["path"] for event in events}) == 2
