"""The report's aggregate views compare like with like, on small synthetic results frames (no run):
a factor is compared only between cells that differ in it alone, the table's and the heatmaps'
numbers are the means and stds written out here, and the privacy-utility view pairs each attacked
round's privacy with the trained federation's utility of the same setting and seed."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from evalgrid.report import heatmaps, tradeoff, views
from evalgrid.report.aggregate import aliases, comparison, heatmap, table_rows, tradeoff_points
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import CellCounts, RunView
from evalgrid.store.results import metric_columns

SQRT2 = math.sqrt(2)


def frame(rows: list[dict], order: dict[str, list]) -> pd.DataFrame:
    """Results as evalgrid.load gives them: factor columns as categories in ``order`` (grid order),
    every metric column (NaN where not given), status "done" unless given."""
    results = pd.DataFrame(rows)
    for name, levels in order.items():
        if all(isinstance(level, str) for level in levels):  # an int factor stays an int column
            results[name] = pd.Categorical(results[name], categories=levels)
    for metric in metric_columns():
        results[metric] = results[metric].astype(float) if metric in results else float("nan")
    results["status"] = results["status"].fillna("done") if "status" in results else "done"
    results["cell_id"] = [f"cell{i:03d}" for i in range(len(results))]
    return results


def run_view(results: pd.DataFrame, order: dict[str, list], planned: pd.DataFrame | None = None) -> RunView:
    levels = {**{name: tuple(values) for name, values in order.items()},
              "seed": tuple(sorted(results["seed"].unique().tolist()))}
    done, failed = int((results["status"] == "done").sum()), int((results["status"] == "failed").sum())
    return RunView(Path("unused"), "synthetic", "", levels, results, CellCounts(done, failed, 0, 0), planned=planned)


# lenet and convnet, attacked by DLG and IG, but an exclusion keeps DLG (which scores high) off the
# convnet: a mean over attacks would credit lenet with DLG's PSNR (lenet 21 dB against convnet 9).
CONFOUNDED_ORDER = {"model": ["lenet", "convnet"], "attack": ["dlg", "ig"]}
CONFOUNDED = [{"model": model, "attack": attack, "seed": seed, "psnr": psnr} for model, attack, seed, psnr in (
    ("lenet", "dlg", 0, 30.0), ("lenet", "dlg", 1, 32.0), ("lenet", "ig", 0, 10.0), ("lenet", "ig", 1, 12.0),
    ("convnet", "ig", 0, 8.0), ("convnet", "ig", 1, 10.0))]


def test_a_factor_is_compared_only_within_settings_where_the_cells_differ_in_it_alone():
    rows = frame(CONFOUNDED, CONFOUNDED_ORDER)
    by_model = comparison(rows, "psnr", "model", ["lenet", "convnet"], ["attack"])
    (series,) = by_model.series  # IG only: DLG ran on one model, so it compares nothing
    assert series.setting == ("ig",) and series.means == (11.0, 9.0) and series.seeds == (2, 2)
    assert series.stds == pytest.approx((SQRT2, SQRT2)) and by_model.single_level == 1
    by_attack = comparison(rows, "psnr", "attack", ["dlg", "ig"], ["model"])
    (series,) = by_attack.series  # on lenet only: the convnet was attacked by IG alone
    assert series.setting == ("lenet",) and series.means == (31.0, 11.0) and by_attack.single_level == 1


def test_the_metrics_section_says_how_many_settings_it_left_out_and_why():
    view = run_view(frame(CONFOUNDED, CONFOUNDED_ORDER), CONFOUNDED_ORDER)
    shown = views.metrics_section(view, ReportOptions())
    captions = dict(re.findall(r'data-factor="(\w+)">.*?<figcaption>(.*?)</figcaption>', shown, re.S))
    assert set(captions) == {"model", "attack"}
    assert "1 setting left out: a value at one level of model only" in captions["model"]
    assert "Each series is one setting of attack: its cells differ in model alone." in captions["model"]


def test_factors_whose_levels_go_one_to_one_are_one_axis():
    rows = frame([{"attack": a, "prior": p, "defense": d, "seed": 0}
                  for a, p in (("ig", "none"), ("gia_l", "dcgan")) for d in ("none", "topk")],
                 {"attack": ["ig", "gia_l"], "prior": ["none", "dcgan"], "defense": ["none", "topk"]})
    assert aliases(rows, ["attack", "prior", "defense"]) == {"attack": ("prior",), "defense": ()}


TABLE_ORDER = {"defense": ["none", "topk"]}
TABLE = [  # none: 10, 12, 14 dB (mean 12, std 2); topk: 5 and 7 (mean 6, std √2), its seed 2 failed
    {"defense": "none", "seed": 0, "psnr": 10.0, "budget_share": 1.0},
    {"defense": "none", "seed": 1, "psnr": 12.0, "budget_share": 1.0},
    {"defense": "none", "seed": 2, "psnr": 14.0, "budget_share": 1.0},
    {"defense": "topk", "seed": 0, "psnr": 5.0, "budget_share": 0.01},
    {"defense": "topk", "seed": 1, "psnr": 7.0, "budget_share": 0.01},
    {"defense": "topk", "seed": 2, "status": "failed", "budget_share": float("nan")},
]


def test_the_table_has_each_combinations_mean_and_std_over_seeds_and_its_seed_count():
    rows = table_rows(frame(TABLE, TABLE_ORDER), ["psnr"], ["defense"])
    assert [row.levels for row in rows] == [("none",), ("topk",)]
    (none_mean, none_std, none_seeds), = rows[0].stats
    (topk_mean, topk_std, topk_seeds), = rows[1].stats
    assert (none_mean, none_std, none_seeds) == (12.0, 2.0, 3)
    assert (topk_mean, topk_std, topk_seeds) == (6.0, pytest.approx(SQRT2), 2)
    assert (rows[1].done, rows[1].failed, rows[1].budget_share) == (2, 1, 0.01)


def test_the_table_flags_the_combinations_whose_cells_ran_under_budget():
    shown = views.table_section(run_view(frame(TABLE, TABLE_ORDER), TABLE_ORDER), ReportOptions())
    body = re.findall(r"<tr( class=\"under-budget\")?>(.*?)</tr>", shown.split("<tbody>")[1])
    cells = [(flag, re.findall(r"<td[^>]*>(.*?)</td>", row)) for flag, row in body]
    assert cells == [("", ["none", "12.0 ± 2.0", "3", "", ""]),
                     (' class="under-budget"', ["topk", "6.0 ± 1.4", "2", "1", "1 % of preset"])]
    older = frame(TABLE, TABLE_ORDER).drop(columns="budget_share")  # results from before the column
    assert "budget" not in views.table_section(run_view(older, TABLE_ORDER), ReportOptions())


def test_the_table_caps_its_rows_and_says_so(monkeypatch):
    monkeypatch.setattr(views, "MAX_TABLE_ROWS", 1)
    shown = views.table_section(run_view(frame(TABLE, TABLE_ORDER), TABLE_ORDER), ReportOptions())
    assert shown.count("<tr>") + shown.count('<tr class="under-budget">') == 2  # the header and one row
    assert "Showing the first 1 of 2 combinations in grid order." in shown


# model × attack over batch sizes and label settings; DLG is excluded at batch size 4, where IG
# scores 10 dB lower: averaging IG over both batch sizes would compare it unfairly with DLG.
HEATMAP_ORDER = {"model": ["lenet", "convnet"], "attack": ["dlg", "ig"], "batch_size": [1, 4],
                 "labels": ["known", "inferred"]}
BASE = {("lenet", "dlg"): 30.0, ("convnet", "dlg"): 20.0, ("lenet", "ig"): 14.0, ("convnet", "ig"): 10.0}
HEATMAP = [{"model": m, "attack": a, "batch_size": b, "labels": labels, "seed": seed,
            "psnr": BASE[m, a] - (10 if b == 4 else 0) + (2 if labels == "inferred" else 0) + seed}
           for (m, a) in BASE for b in (1, 4) for labels in ("known", "inferred") for seed in (0, 1)
           if not (a == "dlg" and b == 4)]


def test_a_heatmap_averages_every_shown_pair_over_the_same_settings_of_the_other_factors():
    rows = frame(HEATMAP, HEATMAP_ORDER)
    found = heatmap(rows, "psnr", ("model", "attack"), (["lenet", "convnet"], ["dlg", "ig"]),
                    ["batch_size", "labels"])
    # batch size 1 only (DLG has no batch 4), over both label settings (+0, +2) and both seeds (+0, +1)
    assert found.values == ((31.5, 15.5), (21.5, 11.5))
    assert found.settings == ((1, "known"), (1, "inferred")) and found.left_out == ((4, "known"), (4, "inferred"))


def test_a_heatmap_cell_says_why_it_is_blank():
    order = {"model": ["lenet", "convnet"], "attack": ["dlg", "idlg", "ig"]}
    done = [{"model": m, "attack": a, "seed": s, "psnr": psnr} for (m, a, psnr) in (
        ("lenet", "dlg", 30.0), ("lenet", "idlg", 28.0), ("lenet", "ig", 12.0), ("convnet", "ig", 9.0)) for s in (0, 1)]
    planned = pd.DataFrame([(m, a, s) for m in order["model"] for a in order["attack"] for s in (0, 1)
                            if (m, a) != ("convnet", "dlg")], columns=["model", "attack", "seed"])
    shown = heatmaps.heatmaps_section(run_view(frame(done, order), order, planned), ReportOptions())
    figure = r'<figure class="heatmap" data-metric="psnr" data-rows="attack" data-columns="model">(.*?)</table>'
    table = re.search(figure, shown, re.S).group(1)
    rows = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    assert rows == [["attack \\ model", "lenet", "convnet"], ["dlg", "30.0", "excluded"], ["idlg", "28.0", "not run"],
                    ["ig", "12.0", "9.0"]]


STAGES = ["fedavg(round=1)", "fedavg(round=8)"]
TRADEOFF_ORDER = {"stage": STAGES, "defense": ["none", "topk"]}
TRADEOFF = [  # round 1: high PSNR, accuracy 0.1 (untrained); round 8: the trained federation
    {"stage": STAGES[0], "stage_round": 1, "defense": "none", "seed": 0, "psnr": 20.0, "defended_accuracy": 0.1},
    {"stage": STAGES[0], "stage_round": 1, "defense": "none", "seed": 1, "psnr": 22.0, "defended_accuracy": 0.1},
    {"stage": STAGES[0], "stage_round": 1, "defense": "topk", "seed": 0, "psnr": 15.0, "defended_accuracy": 0.1},
    {"stage": STAGES[0], "stage_round": 1, "defense": "topk", "seed": 1, "psnr": 17.0, "defended_accuracy": 0.1},
    {"stage": STAGES[1], "stage_round": 8, "defense": "none", "seed": 0, "psnr": 12.0, "defended_accuracy": 0.80},
    {"stage": STAGES[1], "stage_round": 8, "defense": "none", "seed": 1, "defended_accuracy": 0.90},  # no PSNR
    {"stage": STAGES[1], "stage_round": 8, "defense": "topk", "seed": 0, "psnr": 9.0, "defended_accuracy": 0.70},
    {"stage": STAGES[1], "stage_round": 8, "defense": "topk", "seed": 1, "status": "failed"},
]


def test_privacy_at_each_attacked_round_pairs_with_the_same_seeds_last_round_utility():
    points = tradeoff_points(frame(TRADEOFF, TRADEOFF_ORDER), "defended_accuracy", ["psnr"], ["stage", "defense"])
    found = {point.levels: (point.privacy, point.utility, point.seeds, point.utility_round) for point in points}
    assert found == {
        (STAGES[0], "none"): ((21.0,), pytest.approx(0.85), 2, 8),  # round-1 PSNR, round-8 accuracy
        (STAGES[0], "topk"): ((15.0,), 0.70, 1, 8),  # seed 1 has no round-8 accuracy (failed): left out
        (STAGES[1], "none"): ((12.0,), 0.80, 1, 8),  # seed 1's PSNR is missing: its accuracy pairs only above
        (STAGES[1], "topk"): ((9.0,), 0.70, 1, 8),
    }


def test_without_a_varying_stage_privacy_pairs_with_its_own_cells_utility():
    rows = frame([row for row in TRADEOFF if row["stage"] == STAGES[0]], TRADEOFF_ORDER)
    points = tradeoff_points(rows, "defended_accuracy", ["psnr"], ["defense"])
    assert [(p.levels, p.privacy, p.utility, p.utility_round) for p in points] == [
        (("none",), (21.0,), pytest.approx(0.1), None), (("topk",), (16.0,), pytest.approx(0.1), None)]


def test_the_tradeoff_section_says_which_round_utility_is_read_at_and_keys_every_point():
    shown = tradeoff.tradeoff_section(run_view(frame(TRADEOFF, TRADEOFF_ORDER), TRADEOFF_ORDER), ReportOptions())
    assert "Privacy (psnr) at the attacked round, utility (defended_accuracy) at round 8" in shown
    key = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", shown.split("<tbody>")[1])]
    assert key[0] == ["1", STAGES[0], "none", "0.850", "21.0", "2"] and len(key) == 4


def test_the_figures_are_bounded_and_the_page_says_what_it_left_out(monkeypatch):
    drawn = []
    monkeypatch.setattr(views.plots, "comparison_plot",
                        lambda title, *rest, ordered: drawn.append((title, ordered)) or b"")
    order = {"model": ["lenet", "convnet"], "attack": ["dlg", "ig"], "defense": ["none", "topk"],
             "batch_size": [1, 4], "labels": ["known", "inferred"]}
    metrics = ("psnr", "ssim", "lpips", "label_acc", "brr")
    rows = [{**dict(zip(order, levels)), "seed": 0, **{metric: float(i) for metric in metrics}}
            for i, levels in enumerate(pd.MultiIndex.from_product(list(order.values())))]
    shown = views.metrics_section(run_view(frame(rows, order), order), ReportOptions())
    assert len(drawn) == views.MAX_PLOTTED_METRICS * views.MAX_PLOTTED_FACTORS == 12
    assert ("psnr by batch_size", True) in drawn and ("psnr by model", False) in drawn  # lines: batch sizes only
    assert "Not plotted, to keep the page short: metrics label_acc, brr and factors labels" in shown
