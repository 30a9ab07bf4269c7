"""The report's "Reconstructions" section: a gallery of the done cells grouped by a compared
factor, a best/worst strip per level of each compared factor, and one article per cell with its
originals above its reconstructions, its loss curve (:mod:`evalgrid.report.curve_plot`), its
loss terms and, when it ran a small share of its attack's iterations, an "under budget" badge.

A few lines of inline JavaScript let the reader regroup and filter the cells by data-
attributes; without it the page shows every cell grouped by the first compared factor."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalgrid.report.curve_plot import cell_curve
from evalgrid.report.html import factor_spans, image, text
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import RunView
from evalgrid.report.samples import CellSamples, cell_samples
from evalgrid.evaluation.budget import budget_note, share_percent
from evalgrid.store.layout import OutputDir

MAX_PICK_LEVELS = 12  # levels of one factor given a best/worst pair; more are counted, not shown
THUMBNAIL_SIDE = 48  # CSS pixels of a best/worst tile's images


def gallery_section(view: RunView, options: ReportOptions) -> str:
    """The section's HTML: the best/worst strip, the filter controls, the grouped articles."""
    done = view.done
    if done.empty:
        return ""
    out = OutputDir(view.root)
    shown = done.head(options.max_cells)
    samples = SampleCache(out)
    parts = [best_worst_strip(view, samples, set(shown["cell_id"]))]
    if len(done) > len(shown):
        parts.append(f'<p class="note" id="cells-left-out">Showing the first {len(shown)} of {len(done)} done '
                     f'cells in grid order: {len(done) - len(shown)} left out (--max-cells).</p>')
    rows = shown.to_dict("records")
    articles = [cell_article(view, out, row, samples.get(row)) for row in rows]
    parts.append(grouped_cells(view, rows, articles))
    return "".join(parts)


class SampleCache:
    """Each cell's images read once, for its article and its best/worst tiles."""

    def __init__(self, out: OutputDir):
        self.out = out
        self.read: dict[str, CellSamples] = {}

    def get(self, row: Mapping[str, Any]) -> CellSamples:
        cell_id = row["cell_id"]
        if cell_id not in self.read:
            self.read[cell_id] = cell_samples(self.out.artifacts(cell_id), row)
        return self.read[cell_id]


# ---- levels and grouping


def level_labels(view: RunView, factor: str) -> tuple[str, ...]:
    """The factor's levels as text, in grid order, then any other value a done cell holds."""
    labels = [str(level) for level in view.levels[factor]]
    labels += sorted({str(v) for v in view.done[factor]} - set(labels))
    return tuple(labels)


def grouped_cells(view: RunView, rows: Sequence[Mapping[str, Any]], articles: Sequence[str]) -> str:
    """The articles in groups of the first compared factor's levels (grid order within a group),
    each wrapped with its compared factors' level indices as data- attributes for the script."""
    compared = view.compared
    labels = {factor: level_labels(view, factor) for factor in compared}
    items = [(row, f'<div class="cell-item"{_level_attributes(row, labels)}>{article}</div>')
             for row, article in zip(rows, articles)]
    if not compared:
        return f'<div id="gallery"><div class="cell-groups">{"".join(item for _, item in items)}</div></div>'
    factor = compared[0]
    groups = []
    for index, label in enumerate(labels[factor]):
        members = [item for row, item in items if str(row[factor]) == label]
        if members:
            groups.append(f'<div class="cell-group" data-level="{index}"><h3>{text(factor)} = {text(label)} '
                          f'<span class="group-count">({_cells(len(members))})</span></h3>{"".join(members)}</div>')
    return (f'<div id="gallery" data-group-by="{text(factor)}">{_controls(labels, len(items))}'
            f'<div class="cell-groups">{"".join(groups)}</div>{_SCRIPT}</div>')


def _level_attributes(row: Mapping[str, Any], labels: Mapping[str, tuple[str, ...]]) -> str:
    return "".join(f' data-f-{text(factor)}="{levels.index(str(row[factor]))}"' for factor, levels in labels.items())


def _controls(labels: Mapping[str, tuple[str, ...]], cells: int) -> str:
    """The group-by and filter selects, hidden until the script shows them (they need it)."""
    group_by = "".join(f'<option value="{text(f)}">{text(f)}</option>' for f in labels)
    filters = "".join(
        f'<label>{text(factor)} <select data-filter="{text(factor)}"><option value="">all</option>'
        + "".join(f'<option value="{i}">{text(label)}</option>' for i, label in enumerate(levels))
        + "</select></label>" for factor, levels in labels.items())
    return (f'<div class="gallery-controls" hidden><label>group by <select name="group-by">{group_by}</select></label>'
            f'<span class="filters">show only: {filters}</span>'
            f'<span class="shown-count">{_cells(cells)} shown</span></div>')


def _cells(count: int) -> str:
    return f"{count} cell{'s' if count != 1 else ''}"


# Regroups the .cell-item wrappers by the chosen factor's data-f-* level index and hides those a
# filter excludes; a link to a hidden cell clears the filters first. Labels come from the selects.
_SCRIPT = """<script>
(function () {
  "use strict";
  var gallery = document.getElementById("gallery");
  var controls = gallery.querySelector(".gallery-controls");
  var holder = gallery.querySelector(".cell-groups");
  var items = Array.prototype.slice.call(holder.querySelectorAll(".cell-item"));
  var groupBy = controls.querySelector("select[name=group-by]");
  var filters = Array.prototype.slice.call(controls.querySelectorAll("select[data-filter]"));
  function levels(factor) {
    var select = controls.querySelector("select[data-filter='" + factor + "']");
    return Array.prototype.slice.call(select.options, 1).map(function (o) { return [o.value, o.text]; });
  }
  function plural(n) { return n + (n === 1 ? " cell" : " cells"); }
  function regroup() {
    var factor = groupBy.value;
    holder.textContent = "";
    levels(factor).forEach(function (level) {
      var members = items.filter(function (item) { return item.getAttribute("data-f-" + factor) === level[0]; });
      if (!members.length) { return; }
      var group = document.createElement("div"), heading = document.createElement("h3");
      var count = document.createElement("span");
      group.className = "cell-group";
      count.className = "group-count";
      heading.textContent = factor + " = " + level[1] + " ";
      heading.appendChild(count);
      group.appendChild(heading);
      members.forEach(function (item) { group.appendChild(item); });
      holder.appendChild(group);
    });
    gallery.setAttribute("data-group-by", factor);
    apply();
  }
  function apply() {
    var shown = 0;
    items.forEach(function (item) {
      item.hidden = !filters.every(function (f) {
        return f.value === "" || item.getAttribute("data-f-" + f.getAttribute("data-filter")) === f.value;
      });
      if (!item.hidden) { shown += 1; }
    });
    holder.querySelectorAll(".cell-group").forEach(function (group) {
      var all = group.querySelectorAll(".cell-item").length;
      var visible = group.querySelectorAll(".cell-item:not([hidden])").length;
      group.hidden = visible === 0;
      var counted = visible === all ? plural(all) : visible + " of " + plural(all);
      group.querySelector(".group-count").textContent = "(" + counted + ")";
    });
    controls.querySelector(".shown-count").textContent = shown + " of " + plural(items.length) + " shown";
  }
  groupBy.addEventListener("change", regroup);
  filters.forEach(function (f) { f.addEventListener("change", apply); });
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#cell-']");
    var target = link && document.getElementById(link.getAttribute("href").slice(1));
    if (target && target.parentNode.hidden) { filters.forEach(function (f) { f.value = ""; }); apply(); }
  });
  controls.hidden = false;
})();
</script>"""


# ---- best and worst per level


@dataclass(frozen=True)
class Ranking:
    """The metric that ranks cells: their mean over trials, in the direction its entry says is better."""

    metric: str
    higher_is_better: bool

    def describe(self) -> str:
        better = "higher" if self.higher_is_better else "lower"
        return f"mean {self.metric} over trials ({better} is better)"


def ranking(done: pd.DataFrame, candidates: Sequence[str]) -> Ranking | None:
    """The first of ``candidates`` (the run's image metrics: PSNR, SSIM, LPIPS) with a finite
    value among the done cells; None without one."""
    from evalgrid.catalogue import METRICS

    for metric in candidates:
        if metric in done and np.isfinite(pd.to_numeric(done[metric], errors="coerce")).any():
            return Ranking(metric, METRICS[metric].higher_is_better)
    return None


def best_and_worst(done: pd.DataFrame, factor: str, label: str, rank: Ranking) -> tuple[dict, dict] | None:
    """The (best, worst) rows among the done cells whose ``factor`` reads ``label``, by ``rank``
    (the first in grid order on a tie); None when none of them has a value."""
    level = done[done[factor].astype(str) == label]
    values = pd.to_numeric(level[rank.metric], errors="coerce").to_numpy(dtype=float)
    ranked = np.flatnonzero(np.isfinite(values))
    if ranked.size == 0:
        return None
    scores = values[ranked] if rank.higher_is_better else -values[ranked]
    rows = level.iloc[ranked]
    return rows.iloc[int(np.argmax(scores))].to_dict(), rows.iloc[int(np.argmin(scores))].to_dict()


def best_worst_strip(view: RunView, samples: SampleCache, with_article: set[str]) -> str:
    """For each level of each compared factor (MAX_PICK_LEVELS at most), its best and worst cell
    as a small tile linking to the cell's article."""
    rank = ranking(view.done, view.image_metrics)
    if rank is None or not view.compared:
        return ""
    strips = []
    for factor in view.compared:
        labels = [label for label in level_labels(view, factor) if (view.done[factor].astype(str) == label).any()]
        levels = []
        for label in labels[:MAX_PICK_LEVELS]:
            picked = best_and_worst(view.done, factor, label, rank)
            if picked is None:
                continue
            best, worst = picked
            tiles = ([_pick_tile("best and worst (one ranked cell)", best, view, rank, samples, with_article)]
                     if best["cell_id"] == worst["cell_id"] else
                     [_pick_tile(kind, row, view, rank, samples, with_article)
                      for kind, row in (("best", best), ("worst", worst))])
            levels.append(f'<div class="pick-level"><div class="level-name">{text(factor)} = <b>{text(label)}</b>'
                          f'</div>{"".join(tiles)}</div>')
        more = (f'<p class="note">{len(labels) - MAX_PICK_LEVELS} more levels of {text(factor)} not shown.</p>'
                if len(labels) > MAX_PICK_LEVELS else "")
        strips.append(f'<div class="strip" data-factor="{text(factor)}"><h3>best / worst by {text(factor)}</h3>'
                      f'<div class="picks">{"".join(levels)}</div>{more}</div>')
    return (f'<div class="best-worst"><p class="note">Each level\'s best and worst cell by {text(rank.describe())}; '
            f'a tile shows its first sample, original then reconstruction, and links to the cell below.</p>'
            f'{"".join(strips)}</div>')


def _pick_tile(kind: str, row: Mapping[str, Any], view: RunView, rank: Ranking, samples: SampleCache,
               with_article: set[str]) -> str:
    cell_id = row["cell_id"]
    found = samples.get(row)
    images = ""
    if found.samples:
        size = thumbnail_size(found.display_size)
        images = (f'<span class="thumbs">{image(found.samples[0].original, "original", *size)}'
                  f'{image(found.samples[0].reconstruction, "reconstruction", *size)}</span>')
    others = ", ".join(f"{name}={row[name]}" for name in view.varied)
    value = _metric_value(rank.metric, float(row[rank.metric]))
    body = (f'<span class="pick-kind">{text(kind)}</span>{images}<span class="pick-value">{text(value)}</span>'
            f'<span class="pick-factors">{text(others)}</span>{budget_badge(row)}')
    if cell_id in with_article:
        return f'<a class="pick" href="#cell-{text(cell_id)}" title="cell {text(cell_id)}">{body}</a>'
    return (f'<div class="pick" title="cell {text(cell_id)}">{body}'
            f'<span class="note">{text(cell_id)}: not among the cells shown (--max-cells)</span></div>')


def thumbnail_size(display_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) with the longer side THUMBNAIL_SIDE."""
    width, height = display_size
    scale = THUMBNAIL_SIDE / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))



def _metric_value(metric: str, value: float) -> str:
    from evalgrid.catalogue import METRICS

    unit = METRICS[metric].unit
    return f"{metric} {value:.1f} {unit}" if unit else f"{metric} {value:.3f}"


# ---- one cell


def cell_article(view: RunView, out: OutputDir, row: Mapping[str, Any], found: CellSamples) -> str:
    """A done cell: id, varied factors, the budget badge, its originals above its
    reconstructions (the trial with the best mean PSNR), its loss curve and its loss terms."""
    cell_id = row["cell_id"]
    head = (f'<article class="cell" id="cell-{text(cell_id)}"><h4>{text(cell_id)}</h4>'
            f'{factor_spans([(name, row[name]) for name in view.varied])}{budget_badge(row)}')
    shown_trial = found.trial if found.samples else None
    side = f'<div class="cell-side">{cell_curve(out.curve(cell_id), shown_trial)}{loss_terms_table(row)}</div>'
    if found.problem:
        return head + f'<p class="problem">{text(found.problem)}</p><div class="cell-body">{side}</div></article>'
    return head + _sample_notes(found) + f'<div class="cell-body">{_samples_table(found)}{side}</div></article>'


def _sample_notes(found: CellSamples) -> str:
    notes = []
    if found.trials > 1:
        notes.append(f"trial {found.trial + 1} of {found.trials} (the best mean PSNR)")
    if found.batch > len(found.samples):
        notes.append(f"the first {len(found.samples)} of {found.batch} samples")
    return f'<p class="note">{text("; ".join(notes))}</p>' if notes else ""


def _samples_table(found: CellSamples) -> str:
    size = found.display_size
    originals = "".join(_tile(s.original, "original", size, () if s.label is None else (f"label {s.label}",))
                        for s in found.samples)
    reconstructions = "".join(_tile(s.reconstruction, "reconstruction", size, s.captions) for s in found.samples)
    return (f'<table class="samples"><tr class="originals"><th>original</th>{originals}</tr>'
            f'<tr class="reconstructions"><th>reconstruction</th>{reconstructions}</tr></table>')


def _tile(uri: str, alt: str, size: tuple[int, int], captions: tuple[str, ...]) -> str:
    below = "".join(f'<div class="caption">{text(c)}</div>' for c in captions)
    return f"<td>{image(uri, alt, *size)}{below}</td>"


def loss_terms_table(row: Mapping[str, Any]) -> str:
    """The results row's loss_terms ({term: [first step, last step]}, each weighted as in the
    attack's loss) as a table; "" when absent, one line when unreadable."""
    raw = row.get("loss_terms")
    if not isinstance(raw, str) or not raw.strip():
        return ""
    try:
        terms = {str(name): (float(first), float(last)) for name, (first, last) in json.loads(raw).items()}
    except (ValueError, TypeError, AttributeError):
        return '<p class="note">The loss terms recorded for this cell could not be read.</p>'
    if not terms:
        return ""
    body = "".join(f'<tr><th>{text(name)}</th><td>{first:.4g}</td><td>{last:.4g}</td></tr>'
                   for name, (first, last) in terms.items())
    return ('<table class="loss-terms"><caption>loss terms, weighted as in the attack\'s loss</caption>'
            f'<tr><th>term</th><th>first step</th><th>last step</th></tr>{body}</table>')


def budget_badge(row: Mapping[str, Any]) -> str:
    """A visible badge when the cell ran under budget (evalgrid.evaluation.budget): a weak
    reconstruction there says little about the attack at its paper's budget."""
    value = row.get("budget_share")
    try:
        share = float(value)
    except (TypeError, ValueError):  # no such column (older results), or no value
        return ""
    note = budget_note(share)
    if not note:
        return ""
    return (f'<span class="badge under-budget" title="This cell ran {text(share_percent(share))} of its attack '
            f'preset\'s iterations per trial: its reconstructions show a shortened attack, not the attack at its '
            f'published budget.">{text(note)}</span>')
