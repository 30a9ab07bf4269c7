"""Every result row says what produced it (library versions, CUDA, GPU, the launching command)
and how much of its attack preset's budget the cell ran; the run's summary marks the cells that
ran under budget, so that a short quickstart is not read as a broken attack."""

from __future__ import annotations

import math
import platform
import shlex
import shutil
import sys

import numpy
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import evalgrid
from evalgrid.attacks.options import GGLOptions, GIALOptions, InvertingGradientsOptions
from evalgrid.evaluation.budget import budget_note, budget_share
from evalgrid.launch.provenance import current_provenance
from evalgrid.store.layout import OutputDir

PROVENANCE_COLUMNS = ("python_version", "numpy_version", "lpips_version", "cuda_version", "gpu_name", "command")

TINY = """
name = "budget"
metrics = ["psnr"]
[factors]
dataset = [{ name = "digits", resolution = 16 }]
model = ["lenet"]
attack = ["ig"]
seed = [0]
[attacks.ig]
iterations = 4
[run]
curve_points = 0
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One IG cell on 16x16 digits, 4 of its preset's 24,000 steps, run in-process: (DIR, the run's stdout)."""
    from click.testing import CliRunner

    from evalgrid.cli import main

    folder = tmp_path_factory.mktemp("budget")
    (folder / "grid.toml").write_text(TINY)
    result = CliRunner().invoke(main, ["run", str(folder / "grid.toml"), "--out", str(folder / "out"),
                                       "--executor", "debug", "--device", "cpu", "--no-check"])  # checks: elsewhere
    assert result.exit_code == 0, result.output
    return folder / "out", result.stdout


def test_ig_at_300_iterations_runs_an_80th_of_its_preset():
    assert InvertingGradientsOptions().iterations == 24_000 and InvertingGradientsOptions().restarts == 1
    assert budget_share("ig", InvertingGradientsOptions(iterations=300)) == pytest.approx(0.0125)


def test_restarts_count_towards_the_budget():
    assert budget_share("ig", InvertingGradientsOptions(iterations=12_000, restarts=4)) == pytest.approx(2.0)


def test_ggl_counts_gradient_evaluations():
    assert GGLOptions().evaluations == 25_000
    assert budget_share("ggl", GGLOptions(evaluations=2_500)) == pytest.approx(0.1)


def test_gia_l_counts_latent_steps_of_every_restart_and_generator_steps():
    preset = GIALOptions()
    assert (preset.latent_iterations, preset.restarts, preset.generator_iterations) == (400, 3, 6000)  # 7,200
    cell = GIALOptions(latent_iterations=100, restarts=2, generator_iterations=520)  # 720
    assert budget_share("gia_l", cell) == pytest.approx(0.1)


def test_the_note_names_an_under_budget_share_only():
    assert budget_note(0.4) == "under budget: 40 % of the preset's iterations"
    assert budget_note(0.0125) == "under budget: 1.2 % of the preset's iterations"
    assert budget_note(0.6) == ""
    assert budget_note(float("nan")) == ""


def test_the_run_summary_marks_an_under_budget_cell(tiny_run):
    _, stdout = tiny_run
    lines = stdout.strip().splitlines()
    assert lines[-1] == ("1 cell ran under budget (fewer than half the preset's iterations: a poor reconstruction "
                         "there may understate the attack); see budget_share.")
    header = next(line for line in lines if "cells" in line.split() and "psnr" in line.split())
    assert header.split()[-1] == "budget" and "0.017 %" in stdout  # 4 / 24,000


def test_a_row_carries_its_budget_share_and_provenance(tiny_run):
    out, _ = tiny_run
    row = evalgrid.load(out).iloc[0]
    assert row["status"] == "done" and row["budget_share"] == pytest.approx(4 / 24_000)
    assert row["python_version"] == platform.python_version() and row["numpy_version"] == numpy.__version__
    assert row["cuda_version"] == torch.version.cuda and pd.isna(row["gpu_name"])
    assert isinstance(row["lpips_version"], str) and row["lpips_version"]
    assert row["command"] == shlex.join(sys.argv)  # the launcher's: here pytest's, run in-process


def test_the_command_is_shell_quoted():
    assert current_provenance(["evalgrid", "run", "my grid.toml", "--out", "a'b"]).command == \
        "evalgrid run 'my grid.toml' --out 'a'\"'\"'b'"


def test_rows_from_before_these_columns_load_with_nulls(tiny_run, tmp_path):
    out, _ = tiny_run
    older = tmp_path / "older"
    shutil.copytree(out, older)
    (older / "results.parquet").unlink()
    cell = OutputDir(older).result_files()[0]
    table = pq.read_table(cell)
    pq.write_table(table.drop_columns([*PROVENANCE_COLUMNS, "budget_share"]), cell)
    row = evalgrid.load(older).iloc[0]
    assert row["status"] == "done" and row["psnr"] == evalgrid.load(out).iloc[0]["psnr"]
    assert math.isnan(row["budget_share"]) and budget_note(row["budget_share"]) == ""
    assert row[list(PROVENANCE_COLUMNS)].isna().all()
