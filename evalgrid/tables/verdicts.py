"""Trend verdicts: does the measured effect of a key go the paper's way? Computed per series
(each combination of the table's other keys), one rule per kind of trend.

The paper's way is read from the published values of the same series, comparison by comparison
(each step for `monotone`, each level against the reference for `reference`, each pair for
`rank`), never assumed for the whole table: where the published series dips, ties or has a gap,
that comparison expects the dip or is not judged. Published values no more than one unit of their
last printed digit apart are a tie: rounding may have made them differ. Only a table without
published values (a figure) is judged against the claim its definition states (`expect`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalgrid.catalogue.registry import Registry
from evalgrid.tables.compare import Compared
from evalgrid.tables.definition import TableDefinition, Trend
from evalgrid.tables.measure import MeasuredValue, canonical

STRONG = 0.5  # |Spearman's rho| from which a measured series counts as rising or falling (figures)


@dataclass(frozen=True)
class Level:
    text: str  # the level of `along`, as shown
    published: float
    measured: float
    resolution: float = 0.0  # the published value's rounding unit: gaps up to it are ties


@dataclass(frozen=True)
class Verdict:
    series: tuple[tuple[str, str], ...]  # the other keys: (name, value)
    paper: str  # what the paper shows, in words
    measured: str
    outcome: str  # agrees, disagrees, mixed (k of n ... agree), unclear, not measured

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
    """A whole-series verdict: the stated claim's sign against the measured one."""
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
STEP = {1: "rises", -1: "falls", 0: "stays equal"}
AGAINST = {1: "higher than", -1: "lower than", 0: "equal to"}
TIE = " (a tie at the printed precision: not judged)"


def _difference_sign(value: float, reference: float, resolution: float = 0.0) -> int | None:
    """+1, -1 or 0 (a tie: no more apart than ``resolution``); None when either side is missing.
    Two values printed to a unit u and u apart may be equal before rounding (0.0044 and 0.0043
    are [0.00435, 0.00445) and [0.00425, 0.00435)), so a published gap of one unit is a tie."""
    if math.isnan(value) or math.isnan(reference):
        return None
    gap = value - reference
    return 0 if abs(gap) <= resolution * (1 + 1e-9) else 1 if gap > 0 else -1


@dataclass(frozen=True)
class Comparison:
    """One comparison a trend makes: ``level`` against ``base``. ``paper`` is the published sign of
    level − base (None or 0: the paper gives no direction there, so it is not judged)."""

    base: Level
    level: Level
    paper: int | None
    measured: int | None


def _compare(base: Level, level: Level, expected: int | None = None) -> Comparison:
    paper = expected if expected is not None else _difference_sign(level.published, base.published,
                                                                   max(level.resolution, base.resolution))
    return Comparison(base, level, paper, _difference_sign(level.measured, base.measured))


def _judge(comparisons: list[Comparison], flip: int, unit: str) -> str:
    """agrees (every judged comparison goes the published way), disagrees (none does), mixed (k of
    n), unclear (something measured, but the paper gives no direction at any of it), not measured."""
    measured = [c for c in comparisons if c.measured is not None]
    if not measured:
        return "not measured"
    judged = [c for c in measured if c.paper]
    if not judged:
        return "unclear"
    agreeing = sum(c.paper == c.measured * flip for c in judged)
    return "agrees" if agreeing == len(judged) else "disagrees" if agreeing == 0 else (
        f"mixed ({agreeing} of {len(judged)} {unit} agree)")


def _not_judged(comparisons: list[Comparison]) -> str:
    """A note on the comparisons the paper gives no direction for (a published tie or gap)."""
    skipped = [c for c in comparisons if c.measured is not None and not c.paper]
    return f" ({len(skipped)} not judged: published tie at the printed precision, or missing)" if skipped else ""


def _ordered(levels: list[Level]) -> list[Level]:
    """Levels along the axis: by value when every level is a number, else as the paper lists them."""
    positions = _positions(levels)
    return [level for _, level in sorted(zip(positions, levels), key=lambda pair: pair[0])]


def monotone(trend: Trend, levels: list[Level], flip: int) -> tuple[str, str, str]:
    """Each step between neighbouring levels (both published and measured) must go the way the
    published series goes at that step: a published series that dips (SoK Table 2, 6 to 8
    mini-batches) expects the dip. Without published values: the sign of Spearman's rho against
    the stated claim (``expect``)."""
    if trend.expect:
        return _stated_monotone(trend, levels, flip)
    measured = [lv for lv in _ordered(levels) if not math.isnan(lv.measured)]
    if len(measured) < 2:
        return "", "fewer than 2 levels", "not measured"
    both = [lv for lv in measured if not math.isnan(lv.published)]
    steps = [_compare(base, level) for base, level in zip(both, both[1:])]
    if not steps:
        return "fewer than 2 published levels among the measured ones", f"{len(measured)} levels", "unclear"
    paper = "; ".join(f"{c.base.text} to {c.level.text} {STEP[c.paper]}" for c in steps) + _not_judged(steps)
    shown = "; ".join(f"{c.base.text} to {c.level.text} {STEP[c.measured]}" for c in steps)
    return paper, shown, _judge(steps, flip, "steps")


def _stated_monotone(trend: Trend, levels: list[Level], flip: int) -> tuple[str, str, str]:
    measured = [lv for lv in levels if not math.isnan(lv.measured)]
    rho = spearman(_positions(measured), [lv.measured for lv in measured])
    measured_sign = None if math.isnan(rho) else _sign(rho)
    measured_text = "fewer than 2 levels" if measured_sign is None else (
        f"{DIRECTION[measured_sign]} (rho {rho:+.2f} over {len(measured)} levels)")
    return (f"{trend.expect} ({trend.expect_source})", measured_text,
            _outcome(EXPECTED[trend.expect], None if measured_sign is None else measured_sign * flip))


def against_reference(trend: Trend, levels: list[Level], flip: int) -> tuple[str, str, str]:
    """Each level against the reference level, expected to differ from it as it does in the
    published series at that level (or, without published values, as ``expect`` states)."""
    reference = next((lv for lv in levels if canonical(lv.text) == canonical(trend.reference)), None)
    if reference is None or math.isnan(reference.measured):
        return "", f"reference {trend.reference!r} not measured", "not measured"
    expected = EXPECTED[trend.expect] if trend.expect else None
    unclaimed = {canonical(u) for u in trend.unclaimed}
    comparisons = [_compare(reference, lv, 0 if canonical(lv.text) in unclaimed else expected) for lv in levels
                   if lv is not reference and not math.isnan(lv.measured)]
    if not comparisons:
        return "", "no level beside the reference", "not measured"
    if trend.expect:
        paper = f"every level {trend.expect} than {reference.text} ({trend.expect_source})"
        if unclaimed:
            paper += f"; not claimed, not judged: {', '.join(trend.unclaimed)}"
    else:
        paper = "; ".join(f"{c.level.text}: not published (not judged)" if c.paper is None else
                          f"{c.level.text} {AGAINST[c.paper]} {reference.text}" + ("" if c.paper else TIE)
                          for c in comparisons)
    measured = "; ".join(f"{c.level.text} {AGAINST[c.measured]} {reference.text}" for c in comparisons)
    return paper, measured, _judge(comparisons, flip, "levels")


def ranking(trend: Trend, levels: list[Level], flip: int) -> tuple[str, str, str]:
    """Every pair of levels (both published and measured) must be ordered as the published ones."""
    both = [lv for lv in levels if not math.isnan(lv.published) and not math.isnan(lv.measured)]
    if len(both) < 2:
        return "", f"{len(both)} level(s) both published and measured", "not measured"
    pairs = [_compare(base, level) for i, base in enumerate(both) for level in both[i + 1:]]
    rho = spearman([lv.published for lv in both], [lv.measured * flip for lv in both])
    paper_order = " > ".join(lv.text for lv in sorted(both, key=lambda lv: -lv.published))
    measured_order = " > ".join(lv.text for lv in sorted(both, key=lambda lv: -lv.measured))
    sense = " (the measured value's sense flipped: it is a stand-in)" if flip < 0 else ""
    return (f"order {paper_order}{_not_judged(pairs)}",
            f"order {measured_order}; rank correlation with the paper {rho:+.2f} over {len(both)} levels{sense}",
            _judge(pairs, flip, "pairs"))


RULES.register("monotone", monotone)
RULES.register("reference", against_reference)
RULES.register("rank", ranking)


def orientation_flip(columns: dict[str, MeasuredValue], value: str) -> int:
    """-1 when the run measured a stand-in metric of the opposite sense (PSNR for LPIPS)."""
    measured = columns[value]
    if not measured.is_fallback:
        return 1
    from evalgrid.catalogue import METRICS

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
        series.setdefault(key, []).append(Level(row.keys[along], row.published, row.mean, row.resolution))
    flip = orientation_flip(columns, trend.value)
    rule = RULES[trend.kind]
    return [Verdict(key, *rule(trend, levels, flip)) for key, levels in series.items() if _claimed(trend, key)]


def _claimed(trend: Trend, series: tuple[tuple[str, str], ...]) -> bool:
    """Whether the trend's claim covers the series (its ``claimed_from`` and ``claimed_to``
    bounds; a key that is not a number is not covered)."""
    values = dict(series)
    bounds = [(name, bound, 1) for name, bound in trend.claimed_from] + [(name, bound, -1)
                                                                        for name, bound in trend.claimed_to]
    for name, bound, sign in bounds:
        try:
            if sign * (float(values[name]) - bound) < 0:
                return False
        except ValueError:
            return False
    return True
