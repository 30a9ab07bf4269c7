"""benchmarks/gpu.sh, the script that proves the GPU path (issue 19), and the rule that decides
where stacking pays (evalgrid/evaluation/packing.py).

The script's dry run runs every section's real code on the CPU at the smallest sizes, so it
cannot rot while no GPU runs it; the comparison of a GPU run with its CPU twin, a section that
fails and a ``--cells-per-device`` the CLI refuses are checked in-process against known answers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402

from evalgrid.evaluation.packing import (CELLS, PAYS_AT, TRIALS, Measurement, default_stack_trials,  # noqa: E402
                                         device_name, stacking_pays)


# --------------------------------------------------------------------------- gpu.sh


def table_rows(text: str) -> list[list[str]]:
    """The rows of the report's first table (section, figure, value, target, met)."""
    lines = text[text.index("| section | figure |"):].split("\n\n")[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


@pytest.mark.slow
def test_the_dry_run_runs_every_section_and_compares_the_two_runs(tmp_path):
    report = tmp_path / "gpu.md"
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu.sh"), "--dry-run", "--out", str(report)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    rows = table_rows(report.read_text())
    assert {row[0] for row in rows} == {*gpu_check.SECTIONS, "targets"}
    assert not [row for row in rows if "failed" in row[2]]
    differences = {row[1]: row[2] for row in rows if row[1].startswith("max difference")}
    assert set(differences) == {f"max difference {m} (cpu − cpu)" for m in ("psnr", "ssim", "label_acc", "final_loss")}
    assert set(differences.values()) == {"0"}  # the same cells on the same device: bit for bit
    assert any(row[1].endswith("cells_per_device = 2, stack_trials = 2") for row in rows)
    assert any(row[1].endswith("pack_cells = 2") for row in rows)  # the runner's own packing, checked packed


def test_the_largest_difference_of_each_metric_and_its_cell():
    first = pd.DataFrame({"cell_id": ["a", "b", "c", "d"], "status": ["done", "done", "done", "failed"],
                          "psnr": [10.0, 20.0, 30.0, 0.0], "label_acc": [float("nan"), 1.0, 0.5, 0.0]})
    second = pd.DataFrame({"cell_id": ["d", "c", "b", "a"], "status": ["done", "done", "done", "done"],
                           "psnr": [99.0, 29.0, 21.5, 10.0], "label_acc": [1.0, 0.25, 1.0, float("nan")]})
    largest = gpu_check.max_differences(first, second, ["psnr", "label_acc"])
    assert largest["psnr"] == (1.5, "b")  # d failed in the first run: not compared
    assert largest["label_acc"] == (0.25, "c")  # NaN in both (a) is equal
    second.loc[second.cell_id == "b", "label_acc"] = float("nan")
    assert gpu_check.max_differences(first, second, ["label_acc"])["label_acc"] == (math.inf, "b")


def test_a_failing_section_is_marked_failed_and_the_next_one_runs(tmp_path, monkeypatch):
    def broken(findings):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(gpu_check.SECTIONS, "step", broken)
    monkeypatch.setitem(gpu_check.SECTIONS, "memory",
                        lambda findings: findings.add(gpu_check.Figure("memory", "ran", "yes")))
    findings = gpu_check.Findings(gpu_check.DRY, tmp_path)
    for name in ("step", "memory"):
        gpu_check.run_section(name, findings)
    assert findings.failed == ["step"]
    assert [f.value for f in findings.figures if f.section == "step"] == ["**failed**: ZeroDivisionError: a bug"]
    assert [f.what for f in findings.figures if f.section == "memory"] == ["ran"]
    assert "sections failed: step" in gpu_check.report(findings, "bash benchmarks/gpu.sh --dry-run", 1.0)


def test_a_cells_per_device_the_cli_refuses_fails_the_section_loudly(tmp_path, monkeypatch):
    refused = subprocess.CompletedProcess([], 2, "", "Error: No such option: --cells-per-device\n")
    monkeypatch.setattr(gpu_check, "run_cli", lambda args, timeout: refused)
    findings = gpu_check.Findings(gpu_check.DRY, tmp_path)
    with pytest.raises(gpu_check.SectionFailed, match="No such option: --cells-per-device"):
        gpu_check.cells(findings)
    failed = [f.what for f in findings.figures if f.value.startswith("**failed**")]
    assert failed == [f"{findings.workload(TRIALS)}, {mode.name}" for mode in gpu_check.cli_modes(gpu_check.DRY, 2)]


# --------------------------------------------------------------------------- where stacking pays


def test_stacking_is_off_on_the_cpu_where_it_was_measured_slower():
    for workload in (TRIALS, CELLS):
        decision = stacking_pays("cpu", workload)
        assert not decision.on
        assert "measured on cpu" in decision.why and "under the" in decision.why


def test_stacking_is_off_on_a_gpu_nobody_measured():
    decision = stacking_pays("Some Future GPU 999", TRIALS)
    assert not decision.on and "not measured there" in decision.why


def test_stacking_is_on_where_the_latest_measurement_reached_the_bar():
    gpu = "NVIDIA H100 80GB HBM3"
    measured = (Measurement(gpu, TRIALS, 0.8, "2026-01-01", "old.md"),
                Measurement(gpu, TRIALS, PAYS_AT, "2026-02-01", "new.md"),
                Measurement(gpu, CELLS, 4.0, "2026-01-01", "old.md"),
                Measurement(gpu, CELLS, 1.0, "2026-03-01", "newer.md"))
    assert stacking_pays(gpu, TRIALS, measured).on
    assert "new.md" in stacking_pays(gpu, TRIALS, measured).why
    assert not stacking_pays(gpu, CELLS, measured).on  # the newer measurement overrules the older one


def test_the_users_stack_trials_wins_over_the_rule(monkeypatch):
    import evalgrid.evaluation.packing as packing

    monkeypatch.setattr(packing, "MEASURED", (Measurement("cpu", TRIALS, 6.0, "2026-12-07", "test"),))
    assert default_stack_trials(10, "cpu", None) == 10  # pays: every trial at once
    assert default_stack_trials(10, "cpu", 1) == 1  # set by the user
    assert default_stack_trials(10, "Some Future GPU 999", None) == 1  # not measured there


def test_an_unknown_workload_is_refused_and_the_cpu_is_named_cpu():
    with pytest.raises(ValueError, match="trials, cells"):
        stacking_pays("cpu", "restarts")
    assert device_name("cpu") == "cpu"
