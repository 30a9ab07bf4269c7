"""The short results table printed at the end of a run: means over seeds per setting, with the
settings whose attack ran under its preset's budget marked (evaluation/budget.py)."""

from __future__ import annotations

from pathlib import Path

from evalgrid.evaluation.budget import is_under_budget, share_percent, under_budget_line
from evalgrid.grid import Grid
from evalgrid.store.load import load


def results_summary(out_dir: Path, grid: Grid) -> str:
    """The grid's done cells: metric means per setting of the varied factors (seeds pooled), the
    cells of each; under-budget settings get their share of the preset, and a line counts those cells."""
    frame = load(out_dir)
    frame = frame[frame["cell_id"].isin({c.cell_id for c in grid.cells}) & (frame["status"] == "done")]
    if frame.empty:
        return "no finished cells"
    by = [name for name in grid.varied if name != "seed" and frame[name].nunique() > 1] or ["dataset"]
    metrics = [m for m in grid.metrics if frame[m].notna().any()]
    groups = frame.groupby(by, observed=True)
    table = groups[metrics].mean()
    table["cells"] = groups.size()
    under = int(frame["budget_share"].map(is_under_budget).sum())  # cells; NaN (failed, older rows): not under
    if under:
        table["budget"] = groups["budget_share"].min().map(lambda share: share_percent(share)
                                                           if is_under_budget(share) else "")
    seeds = frame["seed"].nunique()
    seeds = f", mean over {seeds} seeds" if seeds > 1 else ""
    return (f"{grid.name}: {len(frame)} cells done{seeds}\n" + table.to_string(float_format=lambda v: f"{v:.3f}")
            + (f"\n{under_budget_line(under)}" if under else ""))
