"""The report's reconstruction gallery (evalgrid/report/gallery.py, curve_plot.py) on small
synthetic runs: a results frame built here, curve.csv files written by the real writer,
reconstruction.npz files written as the pipeline writes them."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalgrid.report.curve_plot import cell_curve
from evalgrid.report.gallery import best_and_worst, budget_badge, gallery_section, loss_terms_table, ranking
from evalgrid.report.html import page
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import CellCounts, RunView
from evalgrid.store.curves import curve_csv
from evalgrid.store.layout import OutputDir

LEVELS = {"defense": ("none", "topk"), "labels": ("known", "inferred"), "seed": (0, 1)}
# grid order: defense outermost, then labels, then seed; cell i has PSNR PSNRS[i]
PSNRS = (20.0, 22.0, 12.0, 15.0, 9.0, 11.0, 7.0, 8.0)


def cell_rows(psnrs=PSNRS, **columns) -> pd.DataFrame:
    rows = []
    for i, psnr in enumerate(psnrs):
        defense, labels, seed = LEVELS["defense"][i // 4], LEVELS["labels"][i // 2 % 2], LEVELS["seed"][i % 2]
        rows.append({"cell_id": f"c{i}", "status": "done", "defense": defense, "labels": labels, "seed": seed,
                     "psnr": psnr, "psnr_per_sample": [[psnr - 1, psnr + 1]],
                     "loss_terms": json.dumps({"cosine": [0.5, 0.25]})})
    frame = pd.DataFrame(rows)
    for name, values in columns.items():
        frame[name] = values
    return frame


def run_view(root: Path, results: pd.DataFrame, levels=LEVELS) -> RunView:
    return RunView(root=root, name="gallery-test", description="", levels=levels, results=results,
                   progress=CellCounts(len(results), 0, 0, 0))


def write_npz(out: OutputDir, cell_id: str) -> None:
    """reconstruction.npz as evaluation/pipeline.py trial_artifacts writes it: 2 samples, 1 trial."""
    generator = np.random.default_rng(0)
    originals = generator.random((2, 1, 4, 4)).astype(np.float32)
    out.artifacts(cell_id).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out.artifacts(cell_id) / "reconstruction.npz", originals=originals,
                        reconstructions=originals[None] * 0.5, true_labels=np.array([3, 7]),
                        recovered_labels=np.array([[3, 7]]))


def write_curve(out: OutputDir, cell_id: str, points) -> None:
    out.artifacts(cell_id).mkdir(parents=True, exist_ok=True)
    out.curve(cell_id).write_bytes(curve_csv(points))


@pytest.fixture
def gallery_run(tmp_path):
    """8 done cells with images; c0 has a two-trial curve."""
    out = OutputDir(tmp_path)
    for i in range(len(PSNRS)):
        write_npz(out, f"c{i}")
    write_curve(out, "c0", [{"trial": 0, "iteration": 10, "loss": 1.0, "psnr": 10.0},
                            {"trial": 0, "iteration": 20, "loss": 0.5, "psnr": 12.0},
                            {"trial": 1, "iteration": 10, "loss": 2.0, "psnr": 9.0},
                            {"trial": 1, "iteration": 20, "loss": 1.5, "psnr": 9.5}])
    return tmp_path


def strips(html: str) -> dict[str, list[str]]:
    """factor → the cell ids its best/worst tiles link to, in page order."""
    found = {}
    for chunk in html.split('<div class="strip" data-factor="')[1:]:
        factor, rest = chunk.split('"', 1)
        found[factor] = re.findall(r'<a class="pick" href="#cell-(\w+)"', rest)
    return found


def articles(html: str) -> dict[str, str]:
    return dict(re.findall(r'<article class="cell" id="cell-(\w+)">(.*?)</article>', html, re.S))


def test_each_level_of_each_compared_factor_shows_its_best_then_worst_cell_by_mean_psnr(gallery_run):
    html = gallery_section(run_view(gallery_run, cell_rows()), ReportOptions())
    # defense none: c1 (22) and c2 (12); topk: c5 (11), c6 (7); labels known: c1, c4 (9); inferred: c3 (15), c6
    assert strips(html) == {"defense": ["c1", "c2", "c5", "c6"], "labels": ["c1", "c4", "c3", "c6"]}
    assert "by mean psnr over trials (higher is better)" in html
    assert "psnr 22.0 dB" in html and "seed" not in strips(html)


def test_without_psnr_the_lowest_lpips_is_best():
    frame = cell_rows(psnr=float("nan"), lpips=[0.3, 0.1, 0.6, 0.2, 0.5, 0.4, 0.9, 0.7])
    rank = ranking(frame, ("psnr", "ssim", "lpips"))  # ssim: not in the frame
    assert (rank.metric, rank.higher_is_better) == ("lpips", False)
    assert "mean lpips" in rank.describe() and "lower is better" in rank.describe()
    best, worst = best_and_worst(frame, "defense", "topk", rank)
    assert (best["cell_id"], worst["cell_id"]) == ("c5", "c6")


def test_a_level_whose_cells_have_no_value_is_left_out_and_a_tie_goes_to_grid_order():
    frame = cell_rows(psnrs=(5.0, 5.0, 5.0, 5.0, np.nan, np.nan, np.nan, np.nan))
    rank = ranking(frame, ("psnr", "lpips"))
    assert best_and_worst(frame, "defense", "topk", rank) is None
    best, worst = best_and_worst(frame, "defense", "none", rank)
    assert best["cell_id"] == worst["cell_id"] == "c0"


def test_cells_are_grouped_by_the_first_compared_factor_with_their_levels_for_the_filters(gallery_run):
    html = gallery_section(run_view(gallery_run, cell_rows()), ReportOptions())
    groups = re.findall(r'<div class="cell-group" data-level="(\d)"><h3>(.*?) <span', html)
    assert groups == [("0", "defense = none"), ("1", "defense = topk")]
    items = re.findall(r'<div class="cell-item" data-f-defense="(\d)" data-f-labels="(\d)"><article class="cell" '
                       r'id="cell-(\w+)">', html)
    assert items == [("0", "0", "c0"), ("0", "0", "c1"), ("0", "1", "c2"), ("0", "1", "c3"),
                     ("1", "0", "c4"), ("1", "0", "c5"), ("1", "1", "c6"), ("1", "1", "c7")]
    assert '<div class="gallery-controls" hidden>' in html and "<script>" in html  # the controls need the script
    assert '<option value="1">inferred</option>' in html


def test_each_article_keeps_originals_above_reconstructions_with_per_image_psnr(gallery_run):
    cell = articles(gallery_section(run_view(gallery_run, cell_rows()), ReportOptions()))["c3"]
    originals, reconstructions = re.search(r'<tr class="originals"><th>original</th>(.*?)</tr>'
                                           r'<tr class="reconstructions"><th>reconstruction</th>(.*?)</tr>',
                                           cell, re.S).groups()
    assert re.findall(r"label (\d)", originals) == ["3", "7"]
    assert re.findall(r"PSNR ([\d.]+) dB", reconstructions) == ["14.0", "16.0"]
    assert "defense = <b>none</b>" in cell and "seed = <b>1</b>" in cell


def test_max_cells_bounds_the_articles_and_a_tile_of_a_left_out_cell_says_so(gallery_run):
    html = gallery_section(run_view(gallery_run, cell_rows()), ReportOptions(max_cells=3))
    assert list(articles(html)) == ["c0", "c1", "c2"]
    assert "Showing the first 3 of 8 done cells in grid order: 5 left out (--max-cells)." in html
    assert strips(html)["defense"] == ["c1", "c2"]  # topk's c5 and c6 have no article to link to
    assert html.count("not among the cells shown (--max-cells)") == 2 + 3  # c5, c6 by defense; c4, c3, c6 by labels


def test_the_loss_curve_is_one_polyline_per_trial_on_a_log_axis(tmp_path):
    out = OutputDir(tmp_path)
    write_curve(out, "c0", [{"trial": 0, "iteration": 10, "loss": 100.0, "psnr": 10.0},
                            {"trial": 0, "iteration": 20, "loss": 10.0, "psnr": 15.0},
                            {"trial": 0, "iteration": 40, "loss": 1.0, "psnr": 20.0},
                            {"trial": 1, "iteration": 40, "loss": 10.0, "psnr": 12.5},
                            {"trial": 1, "iteration": 10, "loss": 100.0, "psnr": 10.0}])
    figure = cell_curve(out.curve("c0"), shown_trial=1)
    loss, psnr = re.findall(r"<svg .*?</svg>", figure)
    assert "loss (log scale)" in loss and "PSNR (dB)" in psnr
    # plot area x 46..272 for iterations 0..40; y 122 (bottom) .. 18 (top) for log10 loss 0..2, PSNR 10..20
    points = dict(re.findall(r'data-trial="(\d)".*?points="([^"]*)"', loss))
    assert points == {"0": "102.5,18.0 159.0,70.0 272.0,122.0", "1": "102.5,18.0 272.0,70.0"}
    assert dict(re.findall(r'data-trial="(\d)".*?points="([^"]*)"', psnr)) == {
        "0": "102.5,122.0 159.0,70.0 272.0,18.0", "1": "102.5,122.0 272.0,96.0"}
    assert re.findall(r'class="tick-y"[^>]*>([^<]*)<', loss) == ["1", "10", "100"]
    assert "trial 2 (images)" in figure


def test_a_loss_that_is_not_always_positive_is_drawn_on_a_linear_axis(tmp_path):
    out = OutputDir(tmp_path)
    write_curve(out, "c0", [{"trial": 0, "iteration": 5, "loss": 0.0}, {"trial": 0, "iteration": 10, "loss": -2.0}])
    figure = cell_curve(out.curve("c0"))
    assert "log scale" not in figure and len(re.findall("<svg ", figure)) == 1  # no PSNR measured: one panel
    assert re.search(r'points="([^"]*)"', figure).group(1) == "159.0,18.0 272.0,122.0"


@pytest.mark.parametrize("content", [None, b"\x00\xffnot a csv", b"trial,iteration,loss,psnr\n", b"a,b\n1,2\n"])
def test_a_missing_or_damaged_curve_is_one_line_and_the_article_still_renders(gallery_run, content):
    out = OutputDir(gallery_run)
    if content is None:
        out.curve("c0").unlink()
    else:
        out.curve("c0").write_bytes(content)
    note = cell_curve(out.curve("c0"))
    assert re.fullmatch(r'<p class="note curve-missing">No loss curve: [^<>\n]*</p>', note)
    cell = articles(gallery_section(run_view(gallery_run, cell_rows()), ReportOptions()))["c0"]
    assert note in cell and '<tr class="reconstructions">' in cell


def test_the_under_budget_badge_shows_exactly_below_half_the_presets_iterations(gallery_run):
    shares = [0.0125, 0.49, 0.5, 1.0, float("nan"), None, 2.0, 0.3]
    badges = [budget_badge({"budget_share": share}) for share in shares]
    assert [bool(b) for b in badges] == [True, True, False, False, False, False, False, True]
    assert ">under budget: 1.2 % of the preset's iterations</span>" in html.unescape(badges[0])
    assert budget_badge({}) == ""  # results from before the column
    page = gallery_section(run_view(gallery_run, cell_rows(budget_share=shares)), ReportOptions())
    cells = articles(page)
    assert [("under budget" in cells[f"c{i}"]) for i in range(8)] == [bool(b) for b in badges]
    tile = re.search(r'<a class="pick" href="#cell-c1".*?</a>', page, re.S).group(0)  # best of defense none
    assert "under budget: 49 % of the preset's iterations" in html.unescape(tile)
    assert "under budget" not in gallery_section(run_view(gallery_run, cell_rows()), ReportOptions())


def test_loss_terms_are_a_table_of_first_and_last_step():
    table = loss_terms_table({"loss_terms": json.dumps({"cosine": [0.5, 0.0123456], "tv": [1e-4, 2e-5]})})
    rows = re.findall(r"<tr><th>(\w+)</th><td>([^<]*)</td><td>([^<]*)</td></tr>", table)
    assert rows == [("cosine", "0.5", "0.01235"), ("tv", "0.0001", "2e-05")]
    assert loss_terms_table({"loss_terms": None}) == loss_terms_table({"loss_terms": "{}"}) == ""
    assert loss_terms_table({}) == ""  # results without the column
    assert "could not be read" in loss_terms_table({"loss_terms": "{not json"})


def test_factor_values_and_ids_come_out_as_text(gallery_run):
    levels = {**LEVELS, "defense": ('<i>"x"&</i>', "topk")}
    frame = cell_rows().assign(defense=[levels["defense"][i // 4] for i in range(8)])
    html = gallery_section(run_view(gallery_run, frame, levels), ReportOptions())
    assert "<i>" not in html and '"x"' not in html
    assert "defense = &lt;i&gt;&quot;x&quot;&amp;&lt;/i&gt;" in html
    assert '<option value="0">&lt;i&gt;&quot;x&quot;&amp;&lt;/i&gt;</option>' in html


def test_the_script_regroups_and_filters_the_cells_in_chromium(gallery_run, tmp_path):
    from browser import browser, console_errors, install_chromium

    problem = install_chromium()
    if problem:
        pytest.skip(problem)
    pytest.importorskip("selenium.webdriver", reason="selenium comes with the test extra")
    target = tmp_path / "gallery.html"
    target.write_text(page("gallery", [("cells", "Reconstructions",
                                        gallery_section(run_view(gallery_run, cell_rows()), ReportOptions()))]))
    with browser() as driver:
        driver.get(target.as_uri())
        state = driver.execute_script("""
            function pick(selector, value) {
              var s = document.querySelector(selector); s.value = value; s.dispatchEvent(new Event("change"));
            }
            function visible() {
              return Array.from(document.querySelectorAll(".cell-item")).filter(i => !i.hidden)
                .map(i => i.querySelector("article").id);
            }
            var controls = !document.querySelector(".gallery-controls").hidden;
            pick("select[name=group-by]", "labels");
            pick("select[data-filter=defense]", "1");
            var groups = Array.from(document.querySelectorAll(".cell-group"), g => g.querySelector("h3").textContent);
            var filtered = visible(), count = document.querySelector(".shown-count").textContent;
            document.querySelector("a.pick[href='#cell-c1']").click();
            return [controls, groups, filtered, count, visible().length];""")
        errors = console_errors(driver)
    controls, groups, filtered, count, after_click = state
    assert controls and errors == []
    assert groups == ["labels = known (2 of 4 cells)", "labels = inferred (2 of 4 cells)"]
    assert filtered == ["cell-c4", "cell-c5", "cell-c6", "cell-c7"] and count == "4 of 8 cells shown"
    assert after_click == 8  # following a link to a filtered-out cell clears the filters
