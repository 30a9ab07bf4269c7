"""The report's sections, in page order: each turns a :class:`RunView` into HTML (or "" when it
has nothing to show)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalgrid.report.gallery import gallery_section
from evalgrid.report.heatmaps import heatmaps_section
from evalgrid.report.html import factor_spans, facts_table, text
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import RunView
from evalgrid.report.tradeoff import tradeoff_section
from evalgrid.report.views import metrics_section, table_section
from evalgrid.store.layout import OutputDir


def grid_section(view: RunView, options: ReportOptions) -> str:
    parts = [f'<p class="description">{text(view.description)}</p>' if view.description else ""]
    if view.grid_problem:
        parts.append(f'<p class="problem">The grid in {text(OutputDir(view.root).grid_toml)} could not be read '
                     f'as it is now, so the factors below are those found in the results: '
                     f'{text(view.grid_problem)}</p>')
    progress = view.progress
    counts = [("done", progress.done), ("failed", progress.failed),
              ("not run yet", "unknown" if progress.not_run is None else progress.not_run)]
    if progress.not_run is not None:
        counts.append(("cells in the grid", progress.done + progress.failed + progress.not_run))
    parts.append(facts_table((name, f'<td class="count" id="count-{name.replace(" ", "-")}">{text(count)}</td>')
                             for name, count in counts))
    if progress.elsewhere:
        parts.append(f'<p class="note">{progress.elsewhere} more results in {text(view.root)} are of cells '
                     f'no longer in the grid; the report leaves them out.</p>')
    varied = set(view.varied)
    rows = [(name, f'<td>{"<b>varied</b>" if name in varied else ""}</td>'
                   f'<td>{text(", ".join(str(v) for v in levels)) or "<i>none run</i>"}</td>')
            for name, levels in sorted(view.levels.items(), key=lambda item: item[0] not in varied)]
    parts.append(facts_table(rows))
    if view.raw_factors:
        parts.append(f"<p>The grid's factors as written:</p><pre>{text(view.raw_factors)}</pre>")
    measured = ", ".join(view.metrics) or "none yet"
    parts.append(f'<p>Metrics with values: {text(measured)}.</p>')
    return "".join(parts)


def failures_section(view: RunView, options: ReportOptions) -> str:
    parts = []
    for row in view.failed.to_dict("records"):
        cell_id = row["cell_id"]
        error = f'{row["error_type"] or "error"}: {row["error_message"] or ""}'
        trace = row["traceback"] or ""
        details = (f"<details><summary>traceback</summary><pre>{text(trace)}</pre></details>" if trace
                   else f'<p class="note">no traceback (see {text(OutputDir(view.root).log(cell_id))})</p>')
        parts.append(f'<article class="failure" id="failure-{text(cell_id)}"><h3>{text(cell_id)}</h3>'
                     f'{factor_spans([(name, row[name]) for name in view.varied])}'
                     f'<pre class="error">{text(error)}</pre>{details}</article>')
    return "".join(parts)


@dataclass(frozen=True)
class Section:
    anchor: str
    heading: str
    render: Callable[[RunView, ReportOptions], str]


SECTIONS: tuple[Section, ...] = (
    Section("grid", "Grid and progress", grid_section),
    Section("metrics", "Metrics by factor", metrics_section),
    Section("heatmaps", "Two factors at once", heatmaps_section),
    Section("table", "Every combination", table_section),
    Section("tradeoff", "Privacy and utility", tradeoff_section),
    Section("cells", "Reconstructions", gallery_section),
    Section("failures", "Failures", failures_section),
)
