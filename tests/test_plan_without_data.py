"""`plan --check` on a machine without the grid's data, weights or checkpoints: it lists the
cells, their count and the trainings first, then every missing file once (as `run` reports it
when it refuses before dispatch), and exits 2."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from evalgrid.cli import main

CIFAR_WITH_LPIPS = """
name = "no-data"
metrics = ["psnr", "lpips"]

[factors]
dataset = ["cifar10"]
model = ["lenet", { name = "convnet", width = 4 }]
attack = [{ name = "idlg", iterations = 2 }]
batch_size = [1]
labels = ["known"]
seed = [0, 1, 2]
"""
CELLS = 2 * 3  # models x seeds


@pytest.fixture
def no_files(tmp_path, monkeypatch):
    """An empty data root and an empty torch cache; returns the paths the grid above misses."""
    monkeypatch.setenv("EVALGRID_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "data").mkdir()
    return {"cifar10": tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1",
            "alexnet": tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"}


def evalgrid(*args) -> tuple[int, str, str, str]:
    """Exit code, stdout, stderr and both as written, of the real CLI run in-process."""
    result = CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr, result.output


def error_of(stderr: str) -> str:
    return stderr[stderr.index("error: "):]


def test_plan_check_lists_the_cells_first_then_every_missing_file_once(write_grid, no_files):
    code, stdout, stderr, output = evalgrid("plan", write_grid(CIFAR_WITH_LPIPS), "--check")
    assert code == 2
    assert len(stdout.splitlines()) == 1 + CELLS + 1 and stdout.splitlines()[-1] == f"{CELLS} cells"
    assert output.index(f"{CELLS} cells") < output.index("error: ")
    error = error_of(stderr)
    assert "2 inputs missing on this machine" in error
    for path in no_files.values():  # six cells, two models: each file named once
        assert error.count(str(path)) == 1, error
    assert "factors.dataset: dataset 'cifar10': missing file" in error
    assert "metrics: missing pretrained weights" in error and "evalgrid weights fetch alexnet" in error
    assert "Traceback" not in output


def test_run_refuses_with_the_same_missing_files_and_writes_nothing(write_grid, no_files, tmp_path):
    grid = write_grid(CIFAR_WITH_LPIPS)
    _, _, planned, _ = evalgrid("plan", grid, "--check")
    code, _, refused, _ = evalgrid("run", grid, "--out", tmp_path / "out", "--executor", "debug")
    assert code == 2
    assert error_of(refused) == error_of(planned) and str(no_files["alexnet"]) in error_of(refused)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_plan_check_keeps_stdout_machine_readable(write_grid, no_files, fmt):
    code, stdout, stderr, _ = evalgrid("plan", write_grid(CIFAR_WITH_LPIPS), "--check", "--format", fmt)
    rows = list(csv.DictReader(io.StringIO(stdout))) if fmt == "csv" else json.loads(stdout)
    assert code == 2 and sorted(str(row["seed"]) for row in rows) == ["0", "0", "1", "1", "2", "2"]
    assert f"{CELLS} cells" in stderr and str(no_files["cifar10"]) in stderr


def test_a_missing_checkpoint_is_listed_with_a_dataset_whose_shape_needs_its_files(write_grid, no_files, tmp_path):
    """An image folder's classes are read from its files: its models cannot be built, but the
    init checkpoint it names is still looked for, and the skipped checks are named."""
    grid = write_grid("""
        name = "no-checkpoint"
        metrics = ["psnr"]
        [factors]
        dataset = [{ name = "imagefolder", path = "skins", resolution = 16 }]
        model = [{ name = "convnet", width = 4 }]
        init = [{ name = "checkpoint", path = "weights/model.pt" }]
        attack = [{ name = "idlg", iterations = 2 }]
        seed = [0, 1]
        """)
    code, stdout, stderr, _ = evalgrid("plan", grid, "--check")
    assert code == 2 and stdout.splitlines()[-1] == "2 cells"
    error = error_of(stderr)
    assert f"factors.init: init 'checkpoint': the file {tmp_path / 'weights' / 'model.pt'} does not exist" in error
    assert f"factors.dataset: dataset 'imagefolder': missing folder {tmp_path / 'data' / 'skins'}" in error
    assert "Not checked until the missing inputs are there: " in error and "the models on dataset imagefolder" in error


def test_a_wrong_setting_is_reported_beside_the_missing_files(write_grid, no_files):
    grid = write_grid(CIFAR_WITH_LPIPS.replace('seed = [0, 1, 2]', 'seed = [0]\ngradient_source = ["nowhere"]'))
    code, _, stderr, _ = evalgrid("plan", grid, "--check")
    error = error_of(stderr)
    assert code == 2 and "2 inputs missing" in error and "1 setting cannot run" in error
    assert "factors.gradient_source:" in error.split("1 setting cannot run")[1]


def test_a_damaged_data_file_is_wrong_not_missing_and_hides_no_missing_file(write_grid, no_files, tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir()
    for index in range(1, 6):
        (folder / f"data_batch_{index}").write_bytes(b"not a pickle")
    code, _, stderr, _ = evalgrid("plan", write_grid(CIFAR_WITH_LPIPS), "--check")
    missing, wrong = error_of(stderr).split("1 setting cannot run")
    assert code == 2 and "1 input missing" in missing and str(no_files["alexnet"]) in missing
    assert f"{folder / 'data_batch_1'} is not a valid CIFAR-10 batch" in wrong and "data_batch_1" not in missing
