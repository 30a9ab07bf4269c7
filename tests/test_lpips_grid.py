"""A grid that asks for LPIPS: refused before anything runs without the weights, scored like
the lpips package with them (weights written by the test into a temporary torch cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import lpips as lpips_package
import numpy as np
import pytest
import torch
import torchvision

import evalgrid

LPIPS_GRID = """
name = "lpips"
metrics = ["psnr", "lpips"]
[factors]
dataset = ["digits"]
model = ["lenet"]
attack = [{ name = "idlg", iterations = 2 }]
batch_size = [2]
labels = ["known"]
seed = [0]
"""


@pytest.fixture
def torch_home(tmp_path):
    return tmp_path / "torch"


def run_cli(torch_home, *args):
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    return subprocess.run([sys.executable, "-m", "evalgrid", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_grid_with_lpips_and_no_weights_stops_before_running(write_grid, torch_home, tmp_path):
    grid = write_grid(LPIPS_GRID)
    for command in (["plan", grid, "--check"], ["run", grid, "--out", tmp_path / "out"]):
        done = run_cli(torch_home, *command)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        expected = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
        assert str(expected) in done.stderr and "evalgrid weights fetch" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_grid_lpips_equals_the_lpips_package_on_the_saved_reconstructions(write_grid, torch_home, tmp_path):
    weights = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    weights.parent.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet().state_dict(), weights)
    out = tmp_path / "out"
    done = run_cli(torch_home, "run", write_grid(LPIPS_GRID), "--out", out, "--executor", "debug")
    assert done.returncode == 0, done.stderr
    row = evalgrid.load(out).iloc[0]
    saved = np.load(out / "artifacts" / row["cell_id"] / "reconstruction.npz")
    os.environ["TORCH_HOME"], previous = str(torch_home), os.environ.get("TORCH_HOME")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = lpips_package.LPIPS(net="alex", verbose=False)
    finally:
        os.environ.pop("TORCH_HOME") if previous is None else os.environ.update(TORCH_HOME=previous)
    originals = torch.from_numpy(saved["originals"]).repeat(1, 3, 1, 1)
    reconstructions = torch.from_numpy(saved["reconstructions"][0]).repeat(1, 3, 1, 1)  # trial 0
    with torch.no_grad():
        expected = network(originals * 2 - 1, reconstructions * 2 - 1).flatten().double().numpy()
    np.testing.assert_allclose(row["lpips_per_sample"][0], expected, rtol=1e-5, atol=1e-6)
    assert row["lpips"] == pytest.approx(expected.mean(), rel=1e-5)
