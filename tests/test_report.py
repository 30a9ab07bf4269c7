"""`evalgrid report DIR`: one self-contained HTML file of a real tiny run (two defenses × two
label settings × two seeds, one cell made to fail), read like a researcher would, and opened
in a real headless Chromium."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
from click.testing import CliRunner
from PIL import Image

import evalgrid
import evalgrid.evaluation.pipeline
from evalgrid.report.aggregate import comparison
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import read_run
from evalgrid.report.samples import best_trial, captions
from evalgrid.report.sections import tradeoff_section

GRID = """
name = "report-test"
description = "Tiny <report> grid & friends"
metrics = ["psnr", "ssim", "label_acc", "accuracy"]

[factors]
dataset = [{ name = "digits", resolution = 16 }]
model = [{ name = "convnet", width = 4 }]
attack = ["ig"]
defense = ["none", { name = "gaussian", sigma = 0.01 }]
batch_size = [2]
labels = ["known", "inferred"]
seed = [0, 1]

[attacks.ig]
iterations = 4

[run]
executor = "debug"
threads_per_worker = 1
"""
MEASURED = ("psnr", "ssim", "label_acc", "accuracy")  # label_acc: the inferred cells only
NOTHING_TO_COMPARE = {("label_acc", "labels")}  # measured at one level of labels only
COMPARED = ("defense", "labels")  # the varied factors but seed
DIVERGED = "loss is <nan> after 3 steps & 'diverged'"  # HTML in an error message must come out as text


def evalgrid_cli(*args):
    from evalgrid.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The run: 8 cells, the gaussian/inferred/seed-1 one failing as if its attack diverged."""
    root = tmp_path_factory.mktemp("report")
    (root / "grid.toml").write_text(GRID)
    real = evalgrid.evaluation.pipeline.evaluate

    def evaluate_or_diverge(cell, context, *more, **options):
        if str(cell.defense) != "none" and cell.labels == "inferred" and cell.seed == 1:
            raise FloatingPointError(DIVERGED)
        return real(cell, context, *more, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evalgrid.evaluation.pipeline, "evaluate", evaluate_or_diverge)
        done = evalgrid_cli("run", root / "grid.toml", "--out", root / "out")
    assert done.exit_code == 1, done.output
    return root / "out"


@pytest.fixture(scope="module")
def report(run_dir) -> str:
    done = evalgrid_cli("report", run_dir)
    assert done.exit_code == 0, done.output
    return (run_dir / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def results(run_dir) -> pd.DataFrame:
    return evalgrid.load(run_dir)


def articles(report: str, kind: str) -> dict[str, str]:
    """cell id → the HTML of its <article class=kind>."""
    return dict(re.findall(rf'<article class="{kind}" id="{kind}-(\w+)">(.*?)</article>', report, re.S))


def count(report: str, name: str) -> str:
    return re.search(rf'id="count-{name}">([^<]*)<', report).group(1)


def decoded(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.removeprefix("data:image/png;base64,"))))


def copy_with_grid(run_dir: Path, tmp_path: Path, change) -> Path:
    """A copy of the run whose grid.toml is changed by change(dict)."""
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    grid = tomllib.loads((copy / "grid.toml").read_text())
    change(grid)
    (copy / "grid.toml").write_text(tomli_w.dumps(grid))
    (copy / "report.html").unlink()
    return copy


def test_the_report_is_one_html_file_that_refers_to_nothing_outside_itself(report):
    assert report.startswith("<!DOCTYPE html>") and "<title>evalgrid report: report-test</title>" in report
    assert "http:" not in report and "https:" not in report and not re.search(r"<script[^>]*\ssrc=", report)
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', report)
    assert sources and all(source.startswith("data:") for source in sources)
    assert "<style>" in report and "stylesheet" not in report


def test_the_grid_its_factors_and_the_progress_counts_are_shown(report):
    assert "Tiny &lt;report&gt; grid &amp; friends" in report and "<report>" not in report
    assert (count(report, "done"), count(report, "failed"), count(report, "not-run-yet")) == ("7", "1", "0")
    assert count(report, "cells-in-the-grid") == "8"
    assert "none, gaussian(sigma=0.01)" in report and "known, inferred" in report


def test_cells_not_run_yet_are_counted_against_the_grid(run_dir, tmp_path):
    copy = copy_with_grid(run_dir, tmp_path, lambda grid: grid["factors"].update(seed=[0, 1, 2]))
    assert evalgrid_cli("report", copy).exit_code == 0
    shown = (copy / "report.html").read_text()
    assert (count(shown, "done"), count(shown, "failed"), count(shown, "not-run-yet")) == ("7", "1", "4")


def test_a_grid_that_no_longer_validates_still_shows_the_results_and_why(run_dir, tmp_path):
    copy = copy_with_grid(run_dir, tmp_path, lambda grid: grid["factors"].update(attack=["renamed_attack"]))
    assert evalgrid_cli("report", copy).exit_code == 0
    shown = (copy / "report.html").read_text()
    assert "renamed_attack" in re.search(r'<p class="problem">(.*?)</p>', shown, re.S).group(1)
    assert count(shown, "done") == "7" and count(shown, "not-run-yet") == "unknown"
    assert len(articles(shown, "cell")) == 7 and "report-test" in shown


def test_one_plot_per_measured_metric_and_varied_factor_but_seed_where_cells_differ_in_it_alone(report):
    plots = re.findall(r'<figure class="plot" data-metric="(\w+)" data-factor="(\w+)">', report)
    assert plots == [(metric, factor) for metric in MEASURED[:3] for factor in COMPARED  # at most 3 metrics
                     if (metric, factor) not in NOTHING_TO_COMPARE]
    assert "Nothing to compare for label_acc by labels" in report
    assert "Not plotted, to keep the page short: metrics accuracy (the table below has every metric" in report
    for image in re.findall(r'<figure class="plot".*?<img src="(data:image/png;base64,[^"]+)"', report):
        assert decoded(image).size[0] > 300


def test_error_bars_are_the_std_over_seeds_of_each_setting_of_the_other_factors():
    rows = pd.DataFrame({"defense": ["none"] * 4 + ["topk"] * 4, "labels": ["known", "inferred"] * 4,
                         "seed": [0, 0, 1, 1] * 2, "psnr": [10, 20, 16, 18, 5, 5, 7, 7]}, dtype=object)
    rows["psnr"] = rows["psnr"].astype(float)
    found = comparison(rows, "psnr", "defense", ["none", "topk", "outpost"], ["labels"])
    assert found.levels == ("none", "topk")  # outpost has no cell
    known, inferred = sorted(found.series, key=lambda series: series.setting != ("known",))
    assert (known.setting, known.means, known.seeds) == (("known",), (13.0, 6.0), (2, 2))  # seeds 10, 16; 5, 7
    assert inferred.means == (19.0, 6.0)  # seeds 20, 18; 5, 7
    assert known.stds == pytest.approx((18 ** 0.5, 2 ** 0.5)) and inferred.stds == pytest.approx((2 ** 0.5, 2 ** 0.5))


def test_the_privacy_utility_scatter_is_shown_when_utility_was_measured(report, run_dir):
    assert re.search(r'<figure class="tradeoff" data-utility="accuracy"><img src="data:image/png', report)
    view = read_run(run_dir)
    no_utility = dataclasses.replace(view, results=view.results.assign(accuracy=float("nan")))
    assert tradeoff_section(no_utility, ReportOptions()) == ""


def test_each_done_cell_shows_its_originals_above_its_reconstructions_with_their_psnr(report, results, run_dir):
    cells = articles(report, "cell")
    done = results[results["status"] == "done"]
    assert list(cells) == [c for c in read_run(run_dir).done["cell_id"]] and len(cells) == 7
    for row in done.itertuples():
        rows = r'<tr class="originals">(.*?)</tr><tr class="reconstructions">(.*?)</tr>'
        originals, reconstructions = re.search(rows, cells[row.cell_id], re.S).groups()
        saved = np.load(run_dir / "artifacts" / row.cell_id / "reconstruction.npz")
        for row_html, expected in ((originals, saved["originals"]), (reconstructions, saved["reconstructions"][0])):
            images = re.findall(r'<img src="([^"]+)"', row_html)
            assert len(images) == len(expected) == 2
            for uri, pixels in zip(images, expected):
                np.testing.assert_array_equal(np.asarray(decoded(uri)), np.round(pixels[0] * 255))
        assert re.findall(r"PSNR ([\d.]+) dB", reconstructions) == [f"{v:.1f}" for v in row.psnr_per_sample[0]]
        assert f"seed = <b>{row.seed}</b>" in cells[row.cell_id]


def test_grayscale_images_are_embedded_as_gray(report):
    first = re.search(r'<tr class="originals">.*?<img src="([^"]+)"', report, re.S).group(1)
    assert decoded(first).mode == "L"


def test_under_each_reconstruction_psnr_and_lpips_when_measured_of_the_best_trial():
    psnr, lpips = [[10.0, 12.0], [20.0, 30.0]], [[0.5, 0.4], [0.25, 0.125]]
    assert best_trial(psnr, trials=2) == 1
    assert captions(psnr, lpips, trial=1, sample=1) == ("PSNR 30.0 dB", "LPIPS 0.125")
    assert captions(psnr, [], trial=1, sample=0) == ("PSNR 20.0 dB",)


def test_max_cells_caps_the_images_and_says_how_many_were_left_out(run_dir, tmp_path):
    target = tmp_path / "three.html"
    assert evalgrid_cli("report", run_dir, "--out", target, "--max-cells", 3).exit_code == 0
    shown = target.read_text()
    assert len(articles(shown, "cell")) == 3
    assert "Showing the first 3 of 7 done cells in grid order: 4 left out" in shown


def test_a_failure_shows_its_factors_its_escaped_error_and_its_traceback(report, results):
    failed = results[results["status"] == "failed"].iloc[0]
    failure = articles(report, "failure")[failed["cell_id"]]
    assert "defense = <b>gaussian(sigma=0.01)</b>" in failure and "seed = <b>1</b>" in failure
    assert "FloatingPointError: loss is &lt;nan&gt; after 3 steps &amp; &#x27;diverged&#x27;" in failure
    assert "<nan>" not in report
    assert re.search(r"<details><summary>traceback</summary><pre>Traceback \(most recent call last\)", failure)


def test_out_writes_the_report_where_asked_and_nothing_in_dir(run_dir, tmp_path):
    copy = copy_with_grid(run_dir, tmp_path, lambda grid: None)
    target = tmp_path / "reports" / "run.html"
    done = evalgrid_cli("report", copy, "--out", target)
    assert done.exit_code == 0 and str(target) in done.output
    assert target.read_text().startswith("<!DOCTYPE html>") and not (copy / "report.html").exists()


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_a_dir_without_a_grid_or_results_exits_2_and_writes_nothing(tmp_path, layout):
    target = tmp_path / "dir"
    if layout == "empty":
        target.mkdir()
    done = evalgrid_cli("report", target)
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert f"error: {target}: " in done.output and "evalgrid run GRID --out" in done.output
    assert not (target / "report.html").exists() and (layout == "empty") == target.exists()


@pytest.fixture(scope="module")
def chromium() -> None:
    """Debian's chromium and chromium-driver, installed by apt-get when missing (root on Debian
    only: skips elsewhere, fails when the install itself fails)."""
    from browser import install_chromium

    problem = install_chromium()
    if problem:
        pytest.skip(problem)
    pytest.importorskip("selenium.webdriver", reason="selenium comes with the test extra")


def test_the_report_renders_in_headless_chromium_without_console_errors(chromium, run_dir, report):
    from browser import ARTIFACTS, screenshot

    seen = screenshot(run_dir / "report.html", ARTIFACTS / "report.png")  # a run with a failed cell
    shutil.copyfile(run_dir / "report.html", ARTIFACTS / "report.html")
    title, errors, images = seen.title, seen.errors, seen.images
    assert title == "evalgrid report: report-test"
    assert errors == []
    assert len(images) == len(re.findall(r"<img ", report)) > 30
    assert all(complete and width > 0 for _, complete, width in images), [i for i in images if not i[2]]
