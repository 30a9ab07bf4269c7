"""The short results table printed at the end of a run: means over seeds per setting."""

from __future__ import annotations

from pathlib import Path

from evalgrid.grid import Grid
from evalgrid.store.load import load


def results_summary(out_dir: Path, grid: Grid) -> str:
    frame = load(out_dir)
    frame = frame[frame["cell_id"].isin({c.cell_id for c in grid.cells}) & (frame["status"] == "done")]
    if frame.empty:
        return "no finished cells"
    by = [name for name in grid.varied if name != "seed" and frame[name].nunique() > 1] or ["dataset"]
    metrics = [m for m in grid.metrics if frame[m].notna().any()]
    table = frame.groupby(by, observed=True)[metrics].mean()
    table["cells"] = frame.groupby(by, observed=True).size()
    seeds = frame["seed"].nunique()
    seeds = f", mean over {seeds} seeds" if seeds > 1 else ""
    return f"{grid.name}: {len(frame)} cells done{seeds}\n" + table.to_string(float_format=lambda v: f"{v:.3f}")
