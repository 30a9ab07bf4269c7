"""The report's figures as PNG bytes, drawn with matplotlib's Agg canvas (no pyplot, no GUI,
no global state; matplotlib is imported only when a figure is drawn)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from evalgrid.report.aggregate import Series
from evalgrid.report.run import Level

AXES = (4.2, 2.4)  # inches of one panel's axes, at DPI (wider for many levels: LEVEL_WIDTH each)
LEVEL_WIDTH, MAX_AXES_WIDTH = 0.3, 11.0
TRADEOFF_AXES = (4.2, 3.2)
DPI = 100
MARKERS = "osD^vP*Xh<>p"
SPREAD = 0.5  # the width, in x positions, over which one level's series are spread (their error bars apart)
# Margins are laid out by hand, in inches (matplotlib's constrained layout doubles a figure's cost).
LEFT, RIGHT, TITLE, PANEL_TITLE = 0.75, 0.25, 0.4, 0.3
X_LABEL = 0.45  # straight tick labels and the axis label under the axes
CHARACTER = 0.062  # inches per character of a small tick label
LEGEND_LINE = 0.16  # inches per legend entry (the legend sits under its axes)
KEY_WIDTH = 2.2  # inches right of the trade-off panels for each column of their legend
LEGEND_ROWS = 20  # entries of the trade-off legend before it takes a second column


@dataclass(frozen=True)
class Panel:
    """One small multiple: a title (the levels its series share) and its labelled series."""

    title: str
    series: Sequence[tuple[str, Series]]
    legend: str = ""  # the legend's title: the factor whose levels label the series


def comparison_plot(title: str, factor: str, levels: Sequence[Level], panels: Sequence[Panel], y_label: str,
                    ordered: bool) -> bytes:
    """Mean ± std over seeds against the levels of ``factor``, a marker per series: points side by
    side for categorical levels, joined by lines only when the factor is ``ordered`` (numeric)."""
    columns, rows = 1, len(panels)  # stacked: every figure of the page has the same width
    slant = 45 if len(levels) > 12 else 30 if sum(len(str(level)) for level in levels) > 30 else 0  # long: slanted
    ticks = math.sin(math.radians(slant)) * CHARACTER * max(len(str(level)) for level in levels)
    axes_size = (min(MAX_AXES_WIDTH, max(AXES[0], LEVEL_WIDTH * len(levels))), AXES[1])
    legend_lines = max(sum(1 for label, _ in panel.series if label) for panel in panels)
    legend = LEGEND_LINE * (legend_lines + 1) + 0.1 if legend_lines else 0.0
    bottom = X_LABEL + ticks + legend
    top = PANEL_TITLE if any(panel.title for panel in panels) else 0.1
    figure, grid = _figure(rows, columns, axes_size, (LEFT, RIGHT, top, bottom))
    positions = list(range(len(levels)))
    for axes, panel in zip(grid, panels):
        count = len(panel.series)
        step = SPREAD / count if count > 1 else 0.0
        for index, (label, series) in enumerate(panel.series):
            shift = (index - (count - 1) / 2) * step
            axes.errorbar([x + shift for x in positions], series.means, yerr=series.stds, capsize=2.5,
                          marker=MARKERS[index % len(MARKERS)], markersize=5, color=f"C{index % 10}",
                          linestyle="-" if ordered else "none", label=label or None)
        axes.set_xticks(positions, [str(level) for level in levels], rotation=slant,
                        ha="right" if slant else "center", fontsize="small", rotation_mode="anchor")
        axes.set_xlim(-0.5, len(levels) - 0.5)
        axes.set_xlabel(factor)
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
        if panel.title:
            axes.set_title(panel.title, fontsize="small")
        if legend_lines:
            below = -(X_LABEL + ticks + 0.05) / AXES[1]
            axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(0.0, below), frameon=False,
                        borderaxespad=0.0, handletextpad=0.3, title=panel.legend or None, title_fontsize="x-small",
                        alignment="left")
    for axes in grid[len(panels):]:
        axes.set_visible(False)
    figure.suptitle(title, y=1 - 0.08 / figure.get_figheight(), va="top")
    return _png(figure)


@dataclass(frozen=True)
class Legend:
    title: str
    labels: Sequence[str]


def tradeoff_plot(x_label: str, utility: Sequence[float], panels: Sequence[tuple[str, Sequence[float]]],
                  colours: Sequence[int], markers: Sequence[int], colour_legend: Legend | None,
                  marker_legend: Legend | None, numbered: bool) -> bytes:
    """Privacy (one panel per metric: axis label, a value per point) against ``utility``; point i
    gets colour ``colours[i]`` and marker ``markers[i]``, and its key number i + 1 when ``numbered``."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    many = colour_legend is not None and len(colour_legend.labels) > 10
    palette = [colormaps["tab20"](i % 20) for i in range(20)] if many else [f"C{i}" for i in range(10)]
    entries = sum(len(legend.labels) for legend in (colour_legend, marker_legend) if legend)
    legend_columns = 2 if entries > LEGEND_ROWS else 1
    figure, grid = _figure(1, len(panels), TRADEOFF_AXES, (LEFT, RIGHT, 0.15, X_LABEL),
                           right=KEY_WIDTH * legend_columns, title=0.0)
    for axes, (y_label, privacy) in zip(grid, panels):
        drawn = [(index, x, y) for index, (x, y) in enumerate(zip(utility, privacy))
                 if not (math.isnan(x) or math.isnan(y))]
        for colour, marker in dict.fromkeys((colours[index], markers[index]) for index, _, _ in drawn):
            group = [(x, y) for index, x, y in drawn if (colours[index], markers[index]) == (colour, marker)]
            axes.scatter([x for x, _ in group], [y for _, y in group], s=36, marker=MARKERS[marker % len(MARKERS)],
                         color=palette[colour % len(palette)], edgecolors="black", linewidths=0.4)
        axes.margins(0.08)
        if numbered:
            _number_points(axes, [(x, y, str(index + 1)) for index, x, y in drawn])
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
    handles = []
    if colour_legend:
        handles += [Line2D([], [], linestyle="none", marker="s", color=palette[i % len(palette)], label=label)
                    for i, label in enumerate(colour_legend.labels)]
    if marker_legend:
        handles += [Line2D([], [], linestyle="none", marker=MARKERS[i % len(MARKERS)], color="#555",
                           label=label) for i, label in enumerate(marker_legend.labels)]
    if handles:
        left = 1 - KEY_WIDTH * legend_columns / figure.get_figwidth()
        figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(left, 0.98), fontsize="x-small",
                      frameon=False, ncols=legend_columns,
                      title=" / ".join(legend.title for legend in (colour_legend, marker_legend) if legend),
                      title_fontsize="small")
    return _png(figure)


NUMBER_SIZE = 6.5  # points: the key numbers beside the trade-off's points
MARKER_RADIUS = 4  # pixels kept free around each point


def _number_points(axes, points: Sequence[tuple[float, float, str]]) -> None:
    """Write each point's number beside it, at the first of a few spots around it that overlaps
    neither a point nor a number already written (the nearest spot when all are taken)."""
    axes.autoscale_view()
    pixels = axes.transData.transform([(x, y) for x, y, _ in points]) if points else []
    taken = [(px - MARKER_RADIUS, py - MARKER_RADIUS, px + MARKER_RADIUS, py + MARKER_RADIUS) for px, py in pixels]
    height = NUMBER_SIZE * DPI / 72
    for (x, y, label), (px, py) in zip(points, pixels):
        width = 0.62 * height * len(label)
        spots = [(reach, dx, dy) for reach in (1, 2.4, 4) for dx, dy in (
            (5 * reach, 1), (5 * reach, -height - 1), (-5 * reach - width, 1), (-5 * reach - width, -height - 1),
            (-width / 2, 4 * reach), (-width / 2, -height - 4 * reach))]
        crowding = [sum(_overlap((px + dx, py + dy, px + dx + width, py + dy + height), box) for box in taken)
                    for _, dx, dy in spots]
        reach, dx, dy = spots[crowding.index(min(crowding))]  # the first free spot, else the least crowded
        taken.append((px + dx, py + dy, px + dx + width, py + dy + height))
        leader = {"arrowprops": {"arrowstyle": "-", "linewidth": 0.4, "color": "#999", "shrinkA": 0,
                                 "shrinkB": 3}} if reach > 1 else {}
        axes.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset pixels", fontsize=NUMBER_SIZE,
                      color="#222", va="bottom", ha="left", **leader)


def _overlap(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """The area two (x0, y0, x1, y1) boxes share, in square pixels."""
    return max(0.0, min(first[2], second[2]) - max(first[0], second[0])) * max(
        0.0, min(first[3], second[3]) - max(first[1], second[1]))


def _figure(rows: int, columns: int, axes_size: tuple[float, float], margins: tuple[float, float, float, float],
            right: float = 0.0, title: float = TITLE):
    """A figure of rows × columns panels, each ``axes_size`` inches with ``margins`` (left, right,
    top, bottom) around it, ``title`` inches above them all and ``right`` inches right of them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    left, right_margin, top, bottom = margins
    cell = (left + axes_size[0] + right_margin, top + axes_size[1] + bottom)
    width, height = columns * cell[0] + right, rows * cell[1] + title
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    grid = []
    for row in range(rows):
        for column in range(columns):
            x, y = column * cell[0] + left, height - title - row * cell[1] - top - axes_size[1]
            grid.append(figure.add_axes((x / width, y / height, axes_size[0] / width, axes_size[1] / height)))
    return figure, grid


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})  # no URL in the file
    return buffer.getvalue()
