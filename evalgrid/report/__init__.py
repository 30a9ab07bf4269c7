"""``evalgrid report DIR``: one self-contained HTML page of a run's results (the grid and its
progress, metric plots, two-factor heatmaps, a table of every combination, the privacy-utility
trade-off, each cell's reconstructions, failures)."""

from __future__ import annotations

from pathlib import Path

from evalgrid.report.options import DEFAULT_MAX_CELLS, ReportOptions


def build_report(out_dir: str | Path, max_cells: int = DEFAULT_MAX_CELLS) -> str:
    """The report of output directory ``out_dir`` as one HTML document (images embedded as data
    URIs, CSS inline). Raises UserError when ``out_dir`` holds neither a grid nor results."""
    from evalgrid.report.html import page
    from evalgrid.report.run import read_run
    from evalgrid.report.sections import SECTIONS

    view = read_run(Path(out_dir))
    options = ReportOptions(max_cells=max_cells)
    return page(f"evalgrid report: {view.name}",
                [(section.anchor, section.heading, section.render(view, options)) for section in SECTIONS])


__all__ = ["DEFAULT_MAX_CELLS", "build_report"]
