"""A cell's convergence record (curve.csv, :mod:`evalgrid.store.curves`) as small inline SVG
panels: the attack's loss against iteration (log y when every loss is > 0), one line per trial,
and one panel per curve metric measured (PSNR). Hand-written SVG strings, not matplotlib: a
report of 200 cells draws them in milliseconds and the page stays one self-contained file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalgrid.report.html import text

PANEL_WIDTH, PANEL_HEIGHT = 292, 150  # CSS pixels of one panel
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 46, 272, 18, 122  # the plot area inside a panel
MAX_TICKS = 5
TRIAL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
MAX_LEGEND_TRIALS = 8  # more trials are summarised in one line


@dataclass(frozen=True)
class Axis:
    """A data range drawn over a pixel range; ``log``: positions are linear in log10(value)."""

    low: float  # in axis units: log10 of the data when ``log``
    high: float
    start: float  # pixel of ``low``
    end: float  # pixel of ``high``
    log: bool = False

    def position(self, value: float) -> float:
        units = math.log10(value) if self.log else value
        return self.start + (units - self.low) / (self.high - self.low) * (self.end - self.start)


def data_axis(values: Sequence[float], start: float, end: float, log: bool, from_zero: bool = False) -> Axis:
    """The axis spanning ``values`` (finite; > 0 when ``log``) exactly, from 0 when ``from_zero``;
    a single value gets half a unit (half a decade) either side."""
    units = [math.log10(v) for v in values] if log else list(values)
    low, high = (0.0 if from_zero else min(units)), max(units)
    if high == low:
        low, high = (low, low + 1.0) if from_zero else (low - 0.5, high + 0.5)
    return Axis(low, high, start, end, log)


def ticks(axis: Axis) -> list[tuple[float, str]]:
    """(data value, label) of at most MAX_TICKS ticks inside the axis, in 1-2-5 steps. A log axis
    gets its decades when two or more fall inside (every n-th when there are many), else the
    1-2-5 multiples inside it, else linear steps of the values it spans."""
    if not axis.log:
        return _linear_ticks(axis.low, axis.high)
    low, high = 10 ** axis.low, 10 ** axis.high
    first, last = math.ceil(axis.low - 1e-9), math.floor(axis.high + 1e-9)
    if last - first + 1 >= 2:
        every = math.ceil((last - first + 1) / MAX_TICKS)
        return [(10.0 ** k, _label(10.0 ** k)) for k in range(first, last + 1, every)]
    multiples = [m * 10.0 ** k for k in range(first - 1, last + 1) for m in (1, 2, 5)]
    inside = [v for v in multiples if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)]
    if 3 <= len(inside) <= MAX_TICKS:
        return [(v, _label(v)) for v in inside]
    return [(v, label) for v, label in _linear_ticks(low, high) if v > 0]


def _linear_ticks(low: float, high: float) -> list[tuple[float, str]]:
    step = _nice_step((high - low) / (MAX_TICKS - 1))
    first = math.ceil(low / step - 1e-9)
    values = [round(k * step, 12) for k in range(first, first + MAX_TICKS + 1)]
    return [(v, _label(v, step)) for v in values if v <= high + step * 1e-9]


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw - 1e-12 * magnitude)


def _label(value: float, step: float | None = None) -> str:
    """A short tick label (0, 0.25, 10, 24k, 1e-4, 2.5e-6) with the digits that tell it from its
    neighbours ``step`` away (0.4115 beside 0.4120, not 0.412 twice)."""
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    if abs(value) < 0.01:
        digits = 0 if step is None else max(0, math.floor(math.log10(abs(value))) - math.floor(math.log10(step) + 1e-9))
        mantissa, exponent = f"{value:.{digits}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if step is None:
        return f"{value:g}"
    return f"{value:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}"


def polyline_points(iterations: Sequence[float], values: Sequence[float], x: Axis, y: Axis) -> str:
    """SVG ``points`` of the (iteration, value) pairs, one decimal."""
    return " ".join(f"{x.position(i):.1f},{y.position(v):.1f}" for i, v in zip(iterations, values))


@dataclass(frozen=True)
class Series:
    trial: int
    iterations: tuple[float, ...]
    values: tuple[float, ...]  # finite (and > 0 on a log axis)


def panel_svg(title: str, series: Sequence[Series], x: Axis, y: Axis, shown_trial: int | None) -> str:
    """One panel: frame, ticks with labels, the title above and 'iteration' below, one
    polyline per trial (a dot for a trial of one point); ``shown_trial`` drawn on top, thicker."""
    parts = [f'<svg class="curve-panel" width="{PANEL_WIDTH}" height="{PANEL_HEIGHT}" '
             f'viewBox="0 0 {PANEL_WIDTH} {PANEL_HEIGHT}" role="img" aria-label="{text(title)} against iteration">',
             f'<text class="panel-title" x="{PLOT_LEFT}" y="{PLOT_TOP - 6}">{text(title)}</text>',
             f'<rect class="frame" x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{PLOT_RIGHT - PLOT_LEFT}" '
             f'height="{PLOT_BOTTOM - PLOT_TOP}"/>']
    for value, label in ticks(x):
        at = x.position(value)
        parts.append(f'<line class="tick" x1="{at:.1f}" y1="{PLOT_BOTTOM}" x2="{at:.1f}" y2="{PLOT_BOTTOM + 4}"/>'
                     f'<text class="tick-x" x="{at:.1f}" y="{PLOT_BOTTOM + 14}">{text(label)}</text>')
    for value, label in ticks(y):
        at = y.position(value)
        parts.append(f'<line class="grid" x1="{PLOT_LEFT}" y1="{at:.1f}" x2="{PLOT_RIGHT}" y2="{at:.1f}"/>'
                     f'<text class="tick-y" x="{PLOT_LEFT - 4}" y="{at + 3:.1f}">{text(label)}</text>')
    parts.append(f'<text class="axis-label" x="{(PLOT_LEFT + PLOT_RIGHT) / 2:.0f}" y="{PANEL_HEIGHT - 2}">'
                 f'iteration</text>')
    for line in sorted(series, key=lambda s: s.trial == shown_trial):  # the shown trial last: on top
        colour = TRIAL_COLOURS[line.trial % len(TRIAL_COLOURS)]
        width = 2.2 if line.trial == shown_trial else 1.3
        if len(line.iterations) == 1:
            parts.append(f'<circle cx="{x.position(line.iterations[0]):.1f}" cy="{y.position(line.values[0]):.1f}" '
                         f'r="3" fill="{colour}"><title>trial {line.trial + 1}</title></circle>')
        else:
            parts.append(f'<polyline class="trial" data-trial="{line.trial}" fill="none" stroke="{colour}" '
                         f'stroke-width="{width}" points="{polyline_points(line.iterations, line.values, x, y)}">'
                         f'<title>trial {line.trial + 1}</title></polyline>')
    return "".join(parts) + "</svg>"


def _series(curve: pd.DataFrame, column: str, log: bool) -> list[Series]:
    """Each trial's finite points of ``column`` (positive ones too when ``log``), by iteration."""
    trials, iterations = curve["trial"].to_numpy(), curve["iteration"].to_numpy(dtype=float)
    values = curve[column].to_numpy(dtype=float)
    order = np.lexsort((iterations, trials))
    keep = np.isfinite(values) & ((values > 0) if log else True)
    found = []
    for trial in np.unique(trials):
        points = order[(trials[order] == trial) & keep[order]]
        if points.size:
            found.append(Series(int(trial), tuple(iterations[points].tolist()), tuple(values[points].tolist())))
    return found


def curve_figure(curve: pd.DataFrame, shown_trial: int | None = None) -> str:
    """HTML of a read curve.csv: the loss panel, a panel per curve metric with values, a legend
    when there are several trials, and a note of points left out (non-finite values)."""
    losses = curve["loss"].to_numpy(dtype=float)
    finite = losses[np.isfinite(losses)]
    if finite.size == 0:
        return '<p class="note curve-missing">Loss curve: no finite loss was recorded.</p>'
    log = bool((finite > 0).all())
    loss_series = _series(curve, "loss", log)
    x = data_axis(curve["iteration"].to_numpy(dtype=float), PLOT_LEFT, PLOT_RIGHT, log=False, from_zero=True)
    panels = [panel_svg("loss (log scale)" if log else "loss", loss_series,
                        x, data_axis(finite, PLOT_BOTTOM, PLOT_TOP, log), shown_trial)]
    for metric in curve.columns[3:]:
        series = _series(curve, metric, log=False)
        if series:
            values = [v for s in series for v in s.values]
            panels.append(panel_svg(_metric_title(metric), series, x,
                                    data_axis(values, PLOT_BOTTOM, PLOT_TOP, log=False), shown_trial))
    notes = []
    if finite.size < losses.size:
        notes.append(f"{losses.size - finite.size} point(s) with a non-finite loss left out")
    trials, per_trial = np.unique(curve["trial"].to_numpy(), return_counts=True)
    if (per_trial == 1).all():
        notes.append("one point per trial: the attack ran fewer steps than the recording interval")
    note = f'<div class="note">{text("; ".join(notes))}.</div>' if notes else ""
    return (f'<figure class="curve">{"".join(panels)}'
            f'<figcaption>{_legend(trials.tolist(), shown_trial)}{note}</figcaption></figure>')


def _metric_title(metric: str) -> str:
    from evalgrid.catalogue import METRICS

    unit = METRICS[metric].unit if metric in METRICS else ""
    return f"{metric.upper()} ({unit})" if unit else metric


def _legend(trials: Sequence[int], shown_trial: int | None) -> str:
    if len(trials) > MAX_LEGEND_TRIALS:
        return (f'<span class="legend">{len(trials)} trials, one line each'
                + (f"; trial {shown_trial + 1} (the images) drawn thicker" if shown_trial is not None else "")
                + "</span>")
    if len(trials) == 1:
        return ""
    keys = "".join(f'<span class="legend-key"><i style="background:{TRIAL_COLOURS[t % len(TRIAL_COLOURS)]}"></i>'
                   f'trial {t + 1}{" (images)" if t == shown_trial else ""}</span>' for t in trials)
    return f'<span class="legend">{keys}</span>'


def cell_curve(path: Path, shown_trial: int | None = None) -> str:
    """The figure of the curve.csv at ``path``, or one line saying why there is none (not
    recorded, damaged, empty): a cell's curve never breaks the page."""
    from evalgrid.store.curves import CurveUnreadable, read_curve

    if not path.exists() and not path.is_symlink():
        return ('<p class="note curve-missing">No loss curve: this cell has no curve.csv (recorded only by runs '
                'with [run] curve_points &gt; 0 and by evalgrid versions that record curves).</p>')
    try:
        curve = read_curve(path)
    except CurveUnreadable as damaged:
        return (f'<p class="note curve-missing">No loss curve: {text(path.name)} could not be read '
                f'({text(damaged)}).</p>')
    if curve.empty:
        return f'<p class="note curve-missing">No loss curve: {text(path.name)} holds no points.</p>'
    return curve_figure(curve, shown_trial)
