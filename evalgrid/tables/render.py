"""A regenerated table as Markdown, LaTeX or CSV: the paper's rows and columns, each cell the
measured mean ± std with the published value and the difference beside it."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pandas as pd

from evalgrid.catalogue.registry import Registry
from evalgrid.evaluation.budget import under_budget_line
from evalgrid.tables import RegeneratedTable
from evalgrid.tables.compare import Compared
from evalgrid.tables.definition import Trend
from evalgrid.tables.verdicts import Verdict

Renderer = Callable[[RegeneratedTable], str]
FORMATS: Registry[Renderer] = Registry("format")
LEGEND = "each cell: measured mean ± std over seeds × trials [published, Δ = measured − published]"
MEASURED_PREFIX = "measured_"  # csv: + the name of a key with stand-ins: the stand-in the run measured


def number(value: float) -> str:
    if math.isnan(value):
        return "–"
    size = abs(value)
    return f"{value:.1f}" if size >= 100 else f"{value:.2f}" if size >= 10 else f"{value:.3f}" if size >= 1 \
        else f"{value:.4f}"


def cell_text(row: Compared | None, comparable: bool) -> str:
    if row is None:
        return ""
    text = number(row.mean)
    if row.n > 1 and not math.isnan(row.std):
        text += f" ± {row.std:.2g}" if abs(row.std) < 10 else f" ± {row.std:.1f}"
    if not math.isnan(row.published):
        shown = number(row.published)
        if comparable and not math.isnan(row.mean):
            shown += f", Δ {'+' if row.difference >= 0 else '−'}{number(abs(row.difference))}"
        text += f" [{shown}]"
    return text


def labelled(text: str, stand_in: str) -> str:
    """A key's value as the paper prints it, with what this run measured instead, if anything."""
    return f"{text} (measured: {stand_in})" if stand_in else text


def stand_ins(rows: list[Compared], positions: range) -> dict[int, str]:
    """Per key position, what these rows measured in place of the paper's value, in order,
    without repeats ("" where they measured the paper's own value)."""
    found: dict[int, dict[str, None]] = {index: {} for index in positions}
    for row in rows:
        for index in positions:
            found[index].update(dict.fromkeys(text for text in row.stand_in(index).split(", ") if text))
    return {index: ", ".join(texts) for index, texts in found.items()}


def pivot(table: RegeneratedTable) -> tuple[list[str], list[list[str]]]:
    """Header and body: the row keys, then one column per (column keys, value). A key measured on
    a stand-in reads "cifar10 (measured: digits)"."""
    definition = table.definition
    n_rows = len(definition.rows)
    several_values = len(definition.values) > 1 or not definition.columns
    columns: dict[tuple[str, ...], list[Compared]] = {}
    lines: dict[tuple[str, ...], list[Compared]] = {}
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], Compared] = {}
    for row in table.rows:
        column = (*row.keys[n_rows:], row.value)
        columns.setdefault(column, []).append(row)
        lines.setdefault(row.keys[:n_rows], []).append(row)
        cells[row.keys[:n_rows], column] = row
    if definition.columns and all(_numeric(column[:-1]) for column in columns):
        columns = {c: columns[c] for c in sorted(columns, key=lambda c: tuple(float(v) for v in c[:-1]))}  # an axis
    header = list(definition.rows)
    column_keys = range(n_rows, len(definition.key_names))
    for column, rows in columns.items():
        measured_on = stand_ins(rows, column_keys)
        parts = [f"{name} {labelled(value, measured_on[n_rows + index])}"
                 for index, (name, value) in enumerate(zip(definition.columns, column[:-1]))]
        if several_values:
            measured = table.columns[column[-1]]
            parts.append(column[-1] + (f" (measured: {measured.column})" if measured.is_fallback else ""))
        header.append(", ".join(parts))
    trend_per_row = _row_verdicts(table)
    if trend_per_row is not None:
        header.append("trend")
    body = []
    for keys, rows in lines.items():
        measured_on = stand_ins(rows, range(n_rows))
        line = [labelled(text, measured_on[index]) for index, text in enumerate(keys)]
        for column in columns:
            line.append(cell_text(cells.get((keys, column)), not table.columns[column[-1]].is_fallback))
        if trend_per_row is not None:
            line.append(trend_per_row.get(keys, ""))
        body.append(line)
    return header, body


def _numeric(values: tuple[str, ...]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def _row_verdicts(table: RegeneratedTable) -> dict[tuple[str, ...], str] | None:
    """Verdicts by row, from the first trend whose series are the table's rows (``along`` is its
    one column key)."""
    for trend, verdicts in table.verdicts:
        if list(table.definition.columns) == [trend.along]:
            return {tuple(value for _, value in verdict.series): verdict.outcome for verdict in verdicts}
    return None


def heading(table: RegeneratedTable) -> list[str]:
    definition = table.definition
    which = "its smoke companion" if table.smoke else "the paper-scale grid"
    lines = [f"{definition.paper}. Run {table.run}: grid {table.grid_name} ({which}), {table.done} cells done, "
             f"{table.failed} failed."]
    if definition.published is not None:
        lines.append(LEGEND + ".")
    else:
        lines.append("each cell: measured mean ± std over seeds × trials (a figure: no published numbers).")
    example = next(((row.keys[index], row.stand_in(index)) for row in table.rows
                    for index in range(len(row.keys)) if row.stand_in(index)), None)
    if example is not None:
        lines.append(f"A label such as \"{labelled(*example)}\" is the paper's setting, measured on a stand-in "
                     f"(the table definition's stand_in); the published value is the paper's.")
    if table.under_budget:
        lines.append(under_budget_line(table.under_budget))
    for name, measured in table.columns.items():
        if measured.is_fallback:
            lines.append(f"The run has no {measured.value.measured}: {name} shows the measured {measured.column} "
                         f"beside the published {name}, with no difference; the trend compares the direction of "
                         f"leakage.")
    return lines


def verdict_lines(table: RegeneratedTable, trend: Trend, verdicts: list[Verdict]) -> list[str]:
    """A heading, one line per series, and the count that agree."""
    measured = table.columns[trend.value]
    stand_in = f" (measured: {measured.column}, judged by the direction of leakage)" if measured.is_fallback else ""
    lines = [f"Trend of {trend.value}{stand_in} along {trend.along} ({trend.kind}"
             + (f", reference {trend.reference}" if trend.kind == "reference" else "") + "):"]
    unmeasured = [verdict for verdict in verdicts if verdict.outcome == "not measured"]
    for verdict in verdicts:
        if verdict.outcome != "not measured":
            lines.append(f"{verdict.series_text}: paper {verdict.paper or '–'}; measured {verdict.measured}: "
                         f"{verdict.outcome}")
    if unmeasured:
        lines.append(f"not measured by this run: {len(unmeasured)} series"
                     + (f" ({'; '.join(v.series_text for v in unmeasured)})" if len(unmeasured) <= 4 else ""))
    lines.append(summary(verdicts))
    return lines


def summary(verdicts: list[Verdict]) -> str:
    judged = [v for v in verdicts if v.outcome != "not measured"]
    agreeing = sum(v.outcome == "agrees" for v in judged)
    return f"{agreeing} of {len(judged)} measured series agree with the paper ({len(verdicts)} series in all)."


def markdown(table: RegeneratedTable) -> str:
    header, body = pivot(table)
    out = [f"## {table.definition.title}", "", *heading(table), ""]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join("---" for _ in header) + "|")
    out += ["| " + " | ".join(line) + " |" for line in body]
    for trend, verdicts in table.verdicts:
        lines = verdict_lines(table, trend, verdicts)
        out += ["", lines[0], *[f"- {line}" for line in lines[1:-1]], "", lines[-1]]
    if table.pictures:
        out += ["", PICTURES, *[f"- {label}: ![{label}]({path})" for label, path in table.pictures]]
    if table.definition.notes:
        out += ["", "Notes:", *[f"- {note}" for note in table.definition.notes]]
    return "\n".join(out) + "\n"


PICTURES = "Pictures (the paper's figure is these panels: originals on top, reconstructions below, values under each):"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "×": r"$\times$", "–": "--"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(char, char) for char in text)


def latex(table: RegeneratedTable) -> str:
    header, body = pivot(table)
    definition = table.definition
    out = [r"\begin{table}[t]", r"\centering", r"\small",
           r"\caption{" + latex_escape(f"{definition.title}. {' '.join(heading(table))}") + "}",
           r"\begin{tabular}{" + "l" * len(definition.rows) + "c" * (len(header) - len(definition.rows)) + "}",
           r"\toprule", " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(latex_escape(cell) for cell in line) + r" \\" for line in body]
    out += [r"\bottomrule", r"\end{tabular}"]
    notes = [line for trend, verdicts in table.verdicts for line in verdict_lines(table, trend, verdicts)]
    notes += list(definition.notes)
    if notes:
        out.append(r"\par\smallskip\footnotesize " + r" \\ ".join(latex_escape(line) for line in notes))
    out.append(r"\end{table}")
    if table.pictures:
        out += [r"\begin{figure}[t]", r"\centering"]
        for label, path in table.pictures:
            out += [r"\includegraphics[width=0.45\linewidth]{" + str(path) + "}",
                    r"\par\footnotesize " + latex_escape(label) + r"\par\smallskip"]
        out += [r"\caption{" + latex_escape(f"{definition.title}: {PICTURES}") + "}", r"\end{figure}"]
    return "\n".join(out) + "\n"


def csv(table: RegeneratedTable) -> str:
    """Long form: one line per key combination and value, with the row's trend verdict. Keys hold
    the paper's values; a key with stand-ins also has a ``measured_<key>`` column: the stand-in
    the run measured (digits where the key reads cifar10; empty for the paper's own setting)."""
    definition = table.definition
    names = definition.key_names
    mapped = [index for index, name in enumerate(names) if definition.key(name).stand_ins]
    records = []
    for row in table.rows:
        measured = table.columns[row.value]
        as_measured = {f"{MEASURED_PREFIX}{names[index]}": row.measured_as[index] if row.measured_as else ""
                       for index in mapped}
        record = {**dict(zip(names, row.keys)), **as_measured, "measure": row.value,
                  "measured_column": measured.column,
                  "measured_mean": row.mean, "measured_std": row.std, "samples": row.n, "cells": row.cells,
                  "published": row.published,
                  "difference": row.difference if not measured.is_fallback else math.nan}
        for trend, verdicts in table.verdicts:
            outcome = {verdict.series: verdict.outcome for verdict in verdicts}
            series = tuple((n, t) for n, t in zip(names, row.keys) if n != trend.along)
            column = "trend" if len(table.verdicts) == 1 else f"trend_{trend.along}_{trend.kind}"
            record[column] = outcome.get(series, "") if row.value == trend.value else ""
        records.append(record)
    buffer = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buffer, index=False)
    return buffer.getvalue()


FORMATS.register("markdown", markdown)
FORMATS.register("latex", latex)
FORMATS.register("csv", csv)
