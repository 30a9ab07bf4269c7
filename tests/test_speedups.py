"""The attack loop's opt-in speed switches: each does what it names while the attack runs and
undoes it after; an unknown one is refused before anything is written."""

from __future__ import annotations

import torch
from torch import nn

import evalgrid

from evalgrid.evaluation.speedups import SPEEDUPS, speedups

GRID = """
name = "switches"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["ig"]
batch_size = [1]
seed = [0]

[attacks.ig]
iterations = 2
"""


def test_no_switch_is_on_unless_asked_for():
    model = nn.Conv2d(3, 4, 3)
    with speedups((), model):
        assert not torch.is_autocast_enabled("cpu")
        assert model.weight.is_contiguous()


def test_channels_last_puts_the_attackers_model_in_that_layout():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with speedups(("channels_last",), model):
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocasts_the_attack_and_stops_after():
    model = nn.Linear(2, 2)
    with speedups(("bf16",), model):
        assert torch.is_autocast_enabled("cpu")
        assert model(torch.ones(1, 2)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_tf32_is_restored_after_the_attack():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with speedups(("tf32",), nn.Linear(2, 2)):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_an_unknown_switch_is_refused_with_the_choices_and_nothing_written(cli, write_grid, tmp_path):
    out = tmp_path / "out"
    result = cli("run", write_grid(GRID), "--out", out, "--speedups", "channels_last,compile")
    assert result.exit_code == 2
    assert "compile" in result.output and "gradient of a gradient" in result.output
    assert all(name in result.output for name in SPEEDUPS)
    assert not out.exists()


def test_a_run_with_switches_runs_its_cells(cli, write_grid, tmp_path):
    result = cli("run", write_grid(GRID), "--out", tmp_path / "out", "--executor", "debug",
                 "--speedups", "channels_last, bf16")
    assert result.exit_code == 0, result.output
    assert "1 cells, 0 already done, 1 to run" in result.output
    assert list(evalgrid.load(tmp_path / "out")["speedups"]) == ["channels_last,bf16"]
