"""The report's figures as PNG bytes, drawn with matplotlib's Agg canvas (no pyplot, no GUI,
no global state; matplotlib is imported only when a figure is drawn)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from evalgrid.report.aggregate import Curve, Point
from evalgrid.report.run import Level

SIZE = (5.6, 3.6)  # inches, at DPI
DPI = 100
MARKERS = "osD^vP*Xh<>p"
DODGE = 0.06  # x offset between the lines of one plot, so that their error bars do not overlap


def metric_plot(metric: str, factor: str, levels: Sequence[Level], lines: Sequence[Curve], y_label: str,
                line_factor: str | None = None) -> bytes:
    """``metric`` (mean ± std over seeds) against the levels of ``factor``, one line per curve."""
    figure, (axes,) = _figure()
    positions = range(len(levels))
    for index, curve in enumerate(lines):
        shift = (index - (len(lines) - 1) / 2) * DODGE
        axes.errorbar([x + shift for x in positions], curve.means, yerr=curve.stds,
                      marker=MARKERS[index % len(MARKERS)], capsize=3, label=curve.label or None)
    crowded = sum(len(str(level)) for level in levels) > 40  # long labels: slanted
    axes.set_xticks(list(positions), [str(level) for level in levels], rotation=25 if crowded else 0,
                    ha="right" if crowded else "center")
    axes.set_xlim(-0.5, len(levels) - 0.5)
    axes.set_xlabel(factor)
    axes.set_ylabel(y_label)
    axes.set_title(f"{metric} by {factor}")
    axes.grid(alpha=0.3)
    if line_factor is not None and any(curve.label for curve in lines):
        axes.legend(title=line_factor, fontsize="small")
    return _png(figure)


def tradeoff_plot(utility: str, panels: Sequence[tuple[str, str, Sequence[Point]]], colour_factor: str | None) -> bytes:
    """Privacy against utility: one panel per privacy metric (name, axis label, points), one
    marker and colour per group, each point annotated with its other factors."""
    figure, all_axes = _figure(columns=len(panels))
    groups = list(dict.fromkeys(p.group for _, _, points in panels for p in points))
    for axes, (_, y_label, points) in zip(all_axes, panels):
        for index, group in enumerate(groups):
            members = [p for p in points if p.group == group]
            axes.scatter([p.utility for p in members], [p.privacy for p in members], s=40,
                         marker=MARKERS[index % len(MARKERS)], color=f"C{index % 10}", label=group or None)
            for p in members:
                if p.label:
                    axes.annotate(p.label, (p.utility, p.privacy), textcoords="offset points", xytext=(4, 3),
                                  fontsize="x-small")
        axes.set_xlabel(utility)
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
    if any(groups):
        all_axes[0].legend(title=colour_factor, fontsize="small")
    figure.suptitle(f"privacy against utility ({utility})")
    return _png(figure)


def _figure(columns: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(SIZE[0] * columns, SIZE[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})  # no URL in the file
    return buffer.getvalue()
