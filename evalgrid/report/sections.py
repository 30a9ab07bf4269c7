"""The report's sections, in page order: each turns a :class:`RunView` into HTML (or "" when it
has nothing to show)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalgrid.report import plots
from evalgrid.report.aggregate import curves, tradeoff_points
from evalgrid.report.html import factor_spans, facts_table, image, png_uri, text
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import RunView
from evalgrid.report.samples import cell_samples
from evalgrid.store.layout import OutputDir

MAX_LINES = 6  # a second compared factor with at most this many levels gets one line per level
UTILITY_METRICS = ("defended_accuracy", "accuracy")  # the first one measured is the x of the trade-off
PRIVACY_METRICS = ("psnr", "lpips")


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


def metrics_section(view: RunView, options: ReportOptions) -> str:
    if view.done.empty:
        return '<p class="note">No cell is done yet.</p>'
    compared = view.compared
    if not compared:
        return '<p class="note">No factor but seed varies: there is nothing to plot against.</p>'
    from evalgrid.catalogue import METRICS

    figures = []
    for metric in view.metrics:
        about = METRICS[metric]
        y_label = f"{metric} ({'higher' if about.higher_is_better else 'lower'} is better)"
        for factor in compared:
            others = [f for f in compared if f != factor]
            line_factor = others[0] if len(others) == 1 and len(view.levels[others[0]]) <= MAX_LINES else None
            lines = curves(view.done, metric, factor, view.levels[factor], line_factor,
                           view.levels[line_factor] if line_factor else ())
            if not lines:
                continue
            png = plots.metric_plot(metric, factor, view.levels[factor], lines, y_label, line_factor)
            caption = (f"{about.summary}. Mean ± std over {_seed_count(lines)} "
                       f"(each seed's cells first averaged over the other factors)"
                       + (f"; one line per {line_factor}." if line_factor else "."))
            figures.append(f'<figure class="plot" data-metric="{text(metric)}" data-factor="{text(factor)}">'
                           f'{image(png_uri(png), f"{metric} by {factor}")}'
                           f'<figcaption>{text(caption)}</figcaption></figure>')
    return f'<div class="plots">{"".join(figures)}</div>'


def _seed_count(lines) -> str:
    counts = [n for curve in lines for n in curve.seeds if n]
    low, high = min(counts), max(counts)
    if low == high:
        return f"{high} seed{'s' if high != 1 else ''}"
    return f"{low} to {high} seeds (where cells are missing)"


def tradeoff_section(view: RunView, options: ReportOptions) -> str:
    measured = view.metrics
    utility = next((m for m in UTILITY_METRICS if m in measured), None)
    privacy = [m for m in PRIVACY_METRICS if m in measured]
    if utility is None or not privacy:
        return ""
    colour = "defense" if "defense" in view.compared else (view.compared[0] if view.compared else None)
    panels = [(m, m, tradeoff_points(view.done, utility, m, view.compared, colour)) for m in privacy]
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        return ""
    png = plots.tradeoff_plot(utility, panels, colour)
    caption = (f"Each point is one setting, its mean over seeds: x = {utility}, y = "
               f"{' and '.join(m for m, _, _ in panels)}" + (f"; one marker per {colour}." if colour else "."))
    return (f'<figure class="tradeoff" data-utility="{text(utility)}">'
            f'{image(png_uri(png), f"privacy against {utility}")}<figcaption>{text(caption)}</figcaption></figure>')


def cells_section(view: RunView, options: ReportOptions) -> str:
    done = view.done
    if done.empty:
        return ""
    shown = done.head(options.max_cells)
    out = OutputDir(view.root)
    parts = []
    if len(done) > len(shown):
        parts.append(f'<p class="note" id="cells-left-out">Showing the first {len(shown)} of {len(done)} done '
                     f'cells in grid order: {len(done) - len(shown)} left out (--max-cells).</p>')
    for row in shown.to_dict("records"):
        parts.append(_cell(view, out, row))
    return "".join(parts)


def _cell(view: RunView, out: OutputDir, row: dict) -> str:
    cell_id = row["cell_id"]
    found = cell_samples(out.artifacts(cell_id), row)
    head = f'<article class="cell" id="cell-{text(cell_id)}"><h3>{text(cell_id)}</h3>'
    head += factor_spans([(name, row[name]) for name in view.varied])
    if found.problem:
        return head + f'<p class="problem">{text(found.problem)}</p></article>'
    width, height = found.display_size
    originals = "".join(_tile(s.original, "original", (width, height), () if s.label is None else (f"label {s.label}",))
                        for s in found.samples)
    reconstructions = "".join(_tile(s.reconstruction, "reconstruction", (width, height), s.captions)
                              for s in found.samples)
    notes = []
    if found.trials > 1:
        notes.append(f"trial {found.trial + 1} of {found.trials} (the best mean PSNR)")
    if found.batch > len(found.samples):
        notes.append(f"the first {len(found.samples)} of {found.batch} samples")
    note = f'<p class="note">{text("; ".join(notes))}</p>' if notes else ""
    return (head + note + f'<table class="samples"><tr class="originals"><th>original</th>{originals}</tr>'
            f'<tr class="reconstructions"><th>reconstruction</th>{reconstructions}</tr></table></article>')


def _tile(uri: str, alt: str, size: tuple[int, int], captions: tuple[str, ...]) -> str:
    below = "".join(f'<div class="caption">{text(c)}</div>' for c in captions)
    return f"<td>{image(uri, alt, *size)}{below}</td>"


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
    Section("tradeoff", "Privacy and utility", tradeoff_section),
    Section("cells", "Reconstructions", cells_section),
    Section("failures", "Failures", failures_section),
)
