"""The report's sections of numbers: each metric along each factor, and a table of every
combination. Each compares like with like (see :mod:`evalgrid.report.aggregate`) and says what it
averaged and what it left out; :mod:`~evalgrid.report.heatmaps` and :mod:`~evalgrid.report.tradeoff`
are the other two such views."""

from __future__ import annotations

import math
from collections.abc import Sequence

from evalgrid.evaluation.budget import UNDER_BUDGET_SHARE, is_under_budget, share_percent
from evalgrid.report import plots
from evalgrid.report.aggregate import Comparison, TableRow, aliases, comparison, table_rows
from evalgrid.report.html import image, png_uri, text
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import Level, RunView

# Bounds that keep the page short and quick to make (each panel costs ~0.1 s of text rendering).
MAX_PLOTTED_METRICS = 3  # figures: at most these metrics × MAX_PLOTTED_FACTORS factors
MAX_PLOTTED_FACTORS = 4
MAX_SERIES_PER_PANEL = 6  # more settings than this are split into small multiples ...
MAX_PANELS = 2  # ... of which at most these are drawn
MAX_TABLE_ROWS = 150


def metrics_section(view: RunView, options: ReportOptions) -> str:
    """Each metric along each compared factor (factors that go one-to-one count as one), at most
    MAX_PLOTTED_METRICS × MAX_PLOTTED_FACTORS figures; a note names what was left out."""
    if view.done.empty:
        return '<p class="note">No cell is done yet.</p>'
    groups = aliases(view.done, view.compared)
    factors = tuple(groups)
    if not factors:
        return '<p class="note">No factor but seed varies: there is nothing to plot against.</p>'
    metrics, plotted = view.metrics, factors[:MAX_PLOTTED_FACTORS]  # catalogue order: psnr first
    figures, nothing = [], []
    for metric in metrics[:MAX_PLOTTED_METRICS]:
        for factor in plotted:
            found = comparison(view.done, metric, factor, view.levels[factor], [f for f in factors if f != factor])
            if found.series:
                figures.append(_comparison_figure(found, groups[factor]))
            else:
                nothing.append(f"{metric} by {factor}")
    notes = _left_out_note(metrics, factors, plotted)
    if nothing:
        notes.append(f"Nothing to compare for {', '.join(nothing)}: no two cells with a value differ in that "
                     f"factor alone (an [[exclude]] rule, cells not run or failed, or a metric measured at one "
                     f"level only); the table below has their numbers.")
    return (f'<div class="plots">{"".join(figures)}</div>'
            + "".join(f'<p class="note">{text(note)}</p>' for note in notes))


def _left_out_note(metrics: Sequence[str], factors: Sequence[str], plotted: Sequence[str]) -> list[str]:
    left_out = []
    if len(metrics) > MAX_PLOTTED_METRICS:
        left_out.append(f"metrics {', '.join(metrics[MAX_PLOTTED_METRICS:])}")
    if len(factors) > len(plotted):
        left_out.append(f"factors {', '.join(factors[len(plotted):])}")
    return [f"Not plotted, to keep the page short: {' and '.join(left_out)} (the table below has every "
            f"metric for every combination)."] if left_out else []


def _comparison_figure(found: Comparison, aliased: Sequence[str]) -> str:
    """One figure of a comparison, with a caption saying what a series is, what its error bars
    are and which settings it left out."""
    from evalgrid.catalogue import METRICS

    about = METRICS[found.metric]
    panels = _panels(found)
    shown = sum(len(panel.series) for panel in panels)
    y_label = f"{found.metric} ({'higher' if about.higher_is_better else 'lower'} is better)"
    title = f"{found.metric} by {found.factor}"
    png = plots.comparison_plot(title, found.factor, found.levels, panels, y_label, ordered=_numeric(found.levels))
    caption = [f"{about.summary}."]
    if found.others:
        caption.append(f"Each series is one setting of {', '.join(found.others)}: its cells differ in "
                       f"{found.factor} alone.")
    caption.append(f"Points: mean ± std over {_seed_range(found)}.")
    if found.single_level:
        caption.append(f"{count_of(found.single_level, 'setting')} left out: a value at one level of "
                       f"{found.factor} only (an [[exclude]] rule, cells not run or failed).")
    if shown < len(found.series):
        caption.append(f"Showing the first {shown} of {len(found.series)} settings, in grid order.")
    if aliased:
        caption.append(f"{found.factor} varies together with {', '.join(aliased)} (each level of one goes "
                       f"with one of the other): one axis.")
    return (f'<figure class="plot" data-metric="{text(found.metric)}" data-factor="{text(found.factor)}">'
            f'{image(png_uri(png), title)}<figcaption>{text(" ".join(caption))}</figcaption></figure>')


def _panels(found: Comparison) -> list[plots.Panel]:
    """The series in small multiples of at most MAX_SERIES_PER_PANEL; a panel's title names the
    levels its series share, a series' label those that differ within the panel."""
    series = found.series[:MAX_SERIES_PER_PANEL * MAX_PANELS]
    size = math.ceil(len(series) / math.ceil(len(series) / MAX_SERIES_PER_PANEL))  # panels of even sizes
    chunks = [series[i:i + size] for i in range(0, len(series), size)]
    panels = []
    for chunk in chunks:
        shared = [i for i in range(len(found.others)) if len({s.setting[i] for s in chunk}) == 1]
        title = ", ".join(f"{found.others[i]} = {chunk[0].setting[i]}" for i in shared)
        varying = [i for i in range(len(found.others)) if i not in shared]
        if len(varying) == 1:  # the factor names the legend; its levels label the series
            legend, labels = found.others[varying[0]], [str(s.setting[varying[0]]) for s in chunk]
        else:
            legend, labels = "", [", ".join(f"{found.others[i]}={s.setting[i]}" for i in varying) for s in chunk]
        panels.append(plots.Panel(title, list(zip(labels, chunk)), legend))
    return panels


def _numeric(levels: Sequence[Level]) -> bool:
    return bool(levels) and all(isinstance(level, int) and not isinstance(level, bool) for level in levels)


def _seed_range(found: Comparison) -> str:
    counts = [n for series in found.series for n in series.seeds if n]
    low, high = min(counts), max(counts)
    return count_of(high, "seed") if low == high else f"{low} to {high} seeds (where cells are missing)"


def count_of(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def table_section(view: RunView, options: ReportOptions) -> str:
    """Every combination of the compared factors with each metric's mean ± std over seeds, its
    seed count, its failures and, where its cells ran under budget, their share of the preset."""
    metrics = view.metrics
    if view.results.empty or not metrics:
        return ""
    factors = view.compared
    rows = table_rows(view.results, metrics, factors)
    shown = rows[:MAX_TABLE_ROWS]
    budget = any(is_under_budget(row.budget_share) for row in rows)
    failed = any(row.failed for row in rows)
    places = [decimals([row.stats[i][0] for row in rows]) for i in range(len(metrics))]
    head = ("".join(f"<th>{text(f)}</th>" for f in factors)
            + "".join(f'<th class="num">{text(m)}</th>' for m in metrics)
            + '<th class="num">seeds</th>' + ('<th class="num">failed</th>' if failed else "")
            + ("<th>budget</th>" if budget else ""))
    body = "".join(_table_row(row, places, failed, budget) for row in shown)
    notes = [f"Mean ± std over seeds for each combination of {', '.join(factors)}" if factors
             else "Mean ± std over seeds", "; seeds: its done cells (a metric averaged over fewer says n=…)."]
    if budget:
        notes.append(f" budget: the share of the attack preset's iterations its cells ran, where under "
                     f"{UNDER_BUDGET_SHARE:.0%} (poor numbers there may understate the attack).")
    if len(rows) > len(shown):
        notes.append(f" Showing the first {len(shown)} of {len(rows)} combinations in grid order.")
    return (f'<p class="note">{text("".join(notes))}</p><div class="table-scroll"><table class="numbers">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _table_row(row: TableRow, places: Sequence[int], failed: bool, budget: bool) -> str:
    cells = "".join(f"<td>{text(level)}</td>" for level in row.levels)
    for (mean, std, seeds), digits in zip(row.stats, places):
        cells += f'<td class="num">{text(_mean_std(mean, std, seeds, digits, row.done))}</td>'
    cells += f'<td class="num">{text(row.done)}</td>' + (f'<td class="num">{text(row.failed or "")}</td>'
                                                         if failed else "")
    under = is_under_budget(row.budget_share)
    if budget:
        cells += f"<td>{text(budget_text(row.budget_share)) if under else ''}</td>"
    return f'<tr class="under-budget">{cells}</tr>' if under else f"<tr>{cells}</tr>"


def _mean_std(mean: float, std: float, seeds: int, places: int, done: int) -> str:
    if not seeds:
        return ""
    shown = f"{mean:.{places}f}" + ("" if math.isnan(std) else f" ± {std:.{places}f}")
    return shown + (f" (n={seeds})" if seeds != done else "")


def budget_text(share: float) -> str:
    """A budget share as the table reads it: 0.01 → '1 % of preset'."""
    return f"{share_percent(share)} of preset"


def decimals(means: Sequence[float]) -> int:
    """Decimal places for a column: three significant digits of its largest mean, at most 4."""
    largest = max((abs(m) for m in means if not math.isnan(m)), default=1.0)
    return min(4, max(0, 2 - math.floor(math.log10(largest)))) if largest > 0 else 2
