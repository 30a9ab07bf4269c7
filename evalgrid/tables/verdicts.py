"""Trend verdicts: does the measured effect of a key go the paper's way? Computed per series
(each combination of the table's other keys), one rule per kind of trend."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalgrid.registry import Registry
from evalgrid.tables.compare import Compared
from evalgrid.tables.definition import TableDefinition, Trend
from evalgrid.tables.measure import MeasuredValue, canonical

STRONG = 0.5  # |Spearman's rho| from which a series counts as rising or falling


@dataclass(frozen=True)
class Level:
    text: str  # the level of `along`, as shown
    published: float
    measured: float


@dataclass(frozen=True)
class Verdict:
    series: tuple[tuple[str, str], ...]  # the other keys: (name, value)
    paper: str  # what the paper shows, in words
    measured: str
    outcome: str  # agrees, disagrees, mixed, unclear, not measured

    @property
    def series_text(self) -> str:
        return ", ".join(f"{name} = {value}" for name, value in self.series) or "all"


Rule = Callable[[Trend, list[Level], int], tuple[str, str, str]]  # (paper, measured, outcome)
RULES: Registry[Rule] = Registry("trend kind")


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho; 0 when either side is constant, NaN with fewer than two points."""
    if len(x) < 2:
        return math.nan
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _sign(rho: float) -> int:
    return 1 if rho >= STRONG else -1 if rho <= -STRONG else 0


def _outcome(paper: int | None, measured: int | None) -> str:
    if measured is None:
        return "not measured"
    if not paper or not measured:
        return "unclear"
    return "agrees" if paper == measured else "disagrees"


def _positions(levels: list[Level]) -> list[float]:
    try:
        return [float(level.text) for level in levels]
    except ValueError:
        return [float(index) for index in range(len(levels))]


DIRECTION = {1: "rises", -1: "falls", 0: "no clear direction"}
EXPECTED = {"increasing": 1, "decreasing": -1, "higher": 1, "lower": -1}


def monotone(trend: Trend, levels: list[Level], flip: int) -> tuple[str, str, str]:
    both = [lv for lv in levels if not math.isnan(lv.published) and not math.isnan(lv.measured)]
    measured = both if len(both) >= 2 else [lv for lv in levels if not math.isnan(lv.measured)]
    rho_measured = spearman(_positions(measured), [lv.measured for lv in measured])
    if trend.expect:
        paper_sign, paper_text = EXPECTED[trend.expect], f"{trend.expect} ({trend.expect_source})"
    else:
        published = both if len(both) >= 2 else [lv for lv in levels if not math.isnan(lv.published)]
        rho_paper = spearman(_positions(published), [lv.published for lv in published])
        paper_sign = None if math.isnan(rho_paper) else _sign(rho_paper)
        paper_text = "fewer than 2 published levels" if paper_sign is None else (
            f"{DIRECTION[paper_sign]} (rho {rho_paper:+.2f} over {len(published)} levels)")
    measured_sign = None if math.isnan(rho_measured) else _sign(rho_measured)
    measured_text = "fewer than 2 levels" if measured_sign is None else (
        f"{DIRECTION[measured_sign]} (rho {rho_measured:+.2f} over {len(measured)} levels)")
    return paper_text, measured_text, _outcome(paper_sign, None if measured_sign is None else measured_sign * flip)


def _difference_sign(value: float, reference: float) -> int:
    return 0 if value == reference else 1 if value > reference else -1


def against_reference(trend: Trend, levels: list[Level], flip: int) -> tuple[str, str, str]:
    reference = next((lv for lv in levels if canonical(lv.text) == canonical(trend.reference)), None)
    if reference is None or math.isnan(reference.measured):
        return "", f"reference {trend.reference!r} not measured", "not measured"
    others = [lv for lv in levels if lv is not reference and not math.isnan(lv.measured)]
    paper_signs, measured_signs = [], []
    for level in others:
        if trend.expect:
            paper_signs.append(EXPECTED[trend.expect])
        else:
            paper_signs.append(None if math.isnan(level.published) or math.isnan(reference.published)
                               else _difference_sign(level.published, reference.published))
        measured_signs.append(_difference_sign(level.measured, reference.measured))
    judged = [(lv, p, m) for lv, p, m in zip(others, paper_signs, measured_signs) if p is not None]
    if not judged:
        return "", "no level beside the reference", "not measured"
    word = {1: "higher than", -1: "lower than", 0: "equal to"}
    paper = "; ".join(f"{lv.text} {word[p]} {reference.text}" for lv, p, _ in judged)
    measured = "; ".join(f"{lv.text} {word[m]} {reference.text}" for lv, _, m in judged)
    agreeing = sum(p == m * flip for _, p, m in judged)
    outcome = "agrees" if agreeing == len(judged) else "disagrees" if agreeing == 0 else (
        f"mixed ({agreeing} of {len(judged)} levels agree)")
    if trend.expect:
        paper = f"every level {trend.expect} than {reference.text} ({trend.expect_source})"
    return paper, measured, outcome


def ranking(trend: Trend, levels: list[Level], flip: int) -> tuple[str, str, str]:
    both = [lv for lv in levels if not math.isnan(lv.published) and not math.isnan(lv.measured)]
    if len(both) < 2:
        return "", f"{len(both)} level(s) both published and measured", "not measured"
    rho = spearman([lv.published for lv in both], [lv.measured * flip for lv in both])
    best_paper = max(both, key=lambda lv: lv.published).text
    best_measured = max(both, key=lambda lv: lv.measured).text
    sense = " (the measured value's sense flipped: it is a stand-in)" if flip < 0 else ""
    return (f"highest at {best_paper}", f"highest at {best_measured}; rank correlation with the paper "
                                        f"{rho:+.2f} over {len(both)} levels{sense}", _outcome(1, _sign(rho)))


RULES.register("monotone", monotone)
RULES.register("reference", against_reference)
RULES.register("rank", ranking)


def orientation_flip(columns: dict[str, MeasuredValue], value: str) -> int:
    """-1 when the run measured a stand-in metric of the opposite sense (PSNR for LPIPS)."""
    measured = columns[value]
    if not measured.is_fallback:
        return 1
    from evalgrid.metrics import METRICS

    names = (measured.value.measured, measured.column)
    if not all(name in METRICS for name in names):
        return 1
    return 1 if METRICS[names[0]].higher_is_better == METRICS[names[1]].higher_is_better else -1


def verdicts(definition: TableDefinition, trend: Trend, compared: list[Compared],
             columns: dict[str, MeasuredValue]) -> list[Verdict]:
    names = definition.key_names
    along = names.index(trend.along)
    series: dict[tuple[tuple[str, str], ...], list[Level]] = {}
    for row in compared:
        if row.value != trend.value:
            continue
        key = tuple((name, text) for i, (name, text) in enumerate(zip(names, row.keys)) if i != along)
        series.setdefault(key, []).append(Level(row.keys[along], row.published, row.mean))
    flip = orientation_flip(columns, trend.value)
    rule = RULES[trend.kind]
    return [Verdict(key, *rule(trend, levels, flip)) for key, levels in series.items()]
