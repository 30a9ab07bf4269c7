"""The report's two-factor view: for each pair of compared factors a heatmap (an HTML table with
coloured cells) of the primary metric, every pair averaged over the same settings of the other
factors (:func:`evalgrid.report.aggregate.heatmap`), and each blank cell saying why it is blank."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

from evalgrid.report.aggregate import Heatmap, aliases, heatmap
from evalgrid.report.html import text
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import Level, RunView
from evalgrid.report.views import count_of, decimals

MAX_HEATMAPS = 6
MAX_LISTED_SETTINGS = 3  # a caption names the settings it left out when there are at most this many


def heatmaps_section(view: RunView, options: ReportOptions) -> str:
    """A heatmap of the primary metric for each pair of compared factors (at most MAX_HEATMAPS,
    factors that go one-to-one counting as one), under a note on what a blank cell means."""
    groups = aliases(view.done, view.compared) if not view.done.empty else {}
    factors = tuple(groups)
    metrics = view.metrics
    if len(factors) < 2 or not metrics:
        return ""
    metric = metrics[0]
    pairs = list(combinations(factors, 2))
    parts = []
    for pair in pairs[:MAX_HEATMAPS]:
        rows_factor, columns_factor = sorted(pair, key=lambda f: -len(view.levels[f]))  # tall, not wide
        others = [f for f in factors if f not in pair]
        found = heatmap(view.done, metric, (rows_factor, columns_factor),
                        (view.levels[rows_factor], view.levels[columns_factor]), others)
        if found is not None:
            parts.append(_heatmap_html(view, found))
    if not parts:
        return ""
    notes = [f"Each heatmap compares {metric} across two factors at once. A blank cell is excluded (no such "
             f"cell in the grid), not run (in the grid, not done yet), failed, or left out (it has values only "
             f"in settings of the other factors that lack some other pair, so it cannot be averaged like them)."]
    if len(pairs) > MAX_HEATMAPS:
        notes.append(f"Not shown, to keep the page short: {', '.join(f'{a} × {b}' for a, b in pairs[MAX_HEATMAPS:])}.")
    return (f'<p class="note">{text(" ".join(notes))}</p>'
            f'<div class="heatmaps">{"".join(parts)}</div>')


def _heatmap_html(view: RunView, found: Heatmap) -> str:
    from evalgrid.catalogue import METRICS

    (rows_factor, columns_factor), (row_levels, column_levels) = found.factors, found.levels
    shown = [v for row in found.values for v in row if not math.isnan(v)]
    low, high = min(shown), max(shown)
    places = decimals(shown)
    blank = _blank_reasons(view, found)
    head = f'<th class="corner">{text(rows_factor)} \\ {text(columns_factor)}</th>' + "".join(
        f"<th>{text(level)}</th>" for level in column_levels)
    body = ""
    for row_level, values in zip(row_levels, found.values):
        cells = ""
        for column_level, value in zip(column_levels, values):
            if math.isnan(value):
                cells += f'<td class="blank">{text(blank(row_level, column_level))}</td>'
            else:
                background, ink = heat_colour(0.5 if high == low else (value - low) / (high - low))
                cells += f'<td style="background:{background};color:{ink}">{text(f"{value:.{places}f}")}</td>'
        body += f"<tr><th>{text(row_level)}</th>{cells}</tr>"
    better = "higher" if METRICS[found.metric].higher_is_better else "lower"
    caption = (f"Mean {found.metric} ({better} is better; brighter is higher) for each {rows_factor} × "
               f"{columns_factor}, {_averaged_over(found)}")
    return (f'<figure class="heatmap" data-metric="{text(found.metric)}" data-rows="{text(rows_factor)}" '
            f'data-columns="{text(columns_factor)}"><table class="heatmap"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table><figcaption>{text(caption)}</figcaption></figure>")


def _averaged_over(found: Heatmap) -> str:
    if not found.others:
        return "each the mean over seeds."
    if len(found.settings) == 1:
        said = f"each the mean over seeds at {_setting_text(found.others, found.settings[0])}"
    else:
        said = (f"each the mean over seeds and over the same {len(found.settings)} settings of "
                f"{', '.join(found.others)}")
    if found.left_out:
        listed = (": " + "; ".join(_setting_text(found.others, s) for s in found.left_out)
                  if len(found.left_out) <= MAX_LISTED_SETTINGS else "")
        said += (f" (those with every shown pair; {count_of(len(found.left_out), 'setting')} that lack some "
                 f"left out{listed})")
    return said + "."


def _setting_text(names: Sequence[str], setting: Sequence[Level]) -> str:
    return ", ".join(f"{name} = {level}" for name, level in zip(names, setting))


def _blank_reasons(view: RunView, found: Heatmap):
    """Why a pair has no number: left out, excluded, failed, not run (or: no value)."""
    (first, second) = found.factors
    done = set(zip(view.done[first], view.done[second]))
    failed = set(zip(view.failed[first], view.failed[second]))
    planned = None if view.planned is None else set(zip(view.planned[first], view.planned[second]))

    def reason(row_level: Level, column_level: Level) -> str:
        pair = (row_level, column_level)
        if pair in found.elsewhere:
            return "left out"
        if pair in done:
            return "no value"
        if planned is None:
            return "no result"
        if pair not in planned:
            return "excluded"
        return "failed" if pair in failed else "not run"

    return reason


HEAT_STOPS = ((0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x91, 0x8c), (0x5e, 0xc9, 0x62), (0xfd, 0xe7, 0x25))


def heat_colour(share: float) -> tuple[str, str]:
    """(background, text colour) at ``share`` in [0, 1] of a viridis-like scale: dark is low."""
    position = min(max(share, 0.0), 1.0) * (len(HEAT_STOPS) - 1)
    index = min(int(position), len(HEAT_STOPS) - 2)
    mix = position - index
    rgb = [round(a + (b - a) * mix) for a, b in zip(HEAT_STOPS[index], HEAT_STOPS[index + 1])]
    return "#" + "".join(f"{c:02x}" for c in rgb), "#000" if share > 0.55 else "#fff"
