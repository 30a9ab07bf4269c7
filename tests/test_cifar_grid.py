"""CIFAR-10 through the real CLI: from a local root in torchvision's format, never downloaded."""

from __future__ import annotations

import evalgrid
from fakedata import write_tiny_cifar10

CIFAR_GRID = """
name = "cifar"
metrics = ["psnr", "label_acc"]
[factors]
dataset = [{{ name = "cifar10", split = "test" }}]
model = ["lenet"]
attack = [{{ name = "idlg", iterations = 2 }}]
batch_size = [2]
seed = [0]
{data}
"""


def test_grid_without_a_data_root_stops_before_running(write_grid, cli, tmp_path, monkeypatch):
    monkeypatch.delenv("EVALGRID_DATA", raising=False)
    result = cli("run", write_grid(CIFAR_GRID.format(data="")), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "EVALGRID_DATA" in result.output and "[data]" in result.output
    assert not (tmp_path / "out").exists()


def test_grid_with_a_root_missing_the_files_names_the_path(write_grid, cli, tmp_path):
    grid = write_grid(CIFAR_GRID.format(data='[data]\nroot = "nowhere"'))
    result = cli("plan", grid, "--check")
    assert result.exit_code == 2 and str(tmp_path / "nowhere" / "cifar-10-batches-py") in result.output


def test_grid_runs_on_a_local_cifar10_root_relative_to_the_grid_file(write_grid, cli, tmp_path):
    written = write_tiny_cifar10(tmp_path / "datasets", n_train=10, n_test=6)
    grid = write_grid(CIFAR_GRID.format(data='[data]\nroot = "datasets"'))
    result = cli("run", grid, "--out", tmp_path / "out", "--executor", "debug")
    assert result.exit_code == 0, result.output
    row = evalgrid.load(tmp_path / "out").iloc[0]
    assert row["status"] == "done" and row["input_dimension"] == 2 * 3 * 32 * 32
    assert set(row["true_labels"]) <= set(written["test"].labels.tolist())
