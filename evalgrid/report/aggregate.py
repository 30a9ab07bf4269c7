"""The numbers behind the plots: a metric per factor level as mean ± std over seeds, and the
privacy-utility points.

Seeds are the replicates: each seed's cells are first averaged over the other factors, then
the per-seed means give the mean and the (sample, ddof = 1) standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalgrid.report.run import Level


@dataclass(frozen=True)
class Curve:
    """One line of a metric plot: a value per x level (NaN where no cell has one)."""

    label: str  # the level of the line factor; "" for the only line
    means: tuple[float, ...]
    stds: tuple[float, ...]  # 0 where fewer than two seeds have a value
    seeds: tuple[int, ...]  # how many seeds each point averages


def curves(rows: pd.DataFrame, metric: str, factor: str, levels: Sequence[Level],
           line_factor: str | None = None, line_levels: Sequence[Level] = ()) -> list[Curve]:
    """``metric`` against ``factor`` (at ``levels``), one curve per level of ``line_factor`` that
    has a value (a single curve without one)."""
    keys = [factor] if line_factor is None else [factor, line_factor]
    rows = rows[rows[metric].notna()]
    per_seed = rows.groupby([*keys, "seed"], observed=True)[metric].mean()
    stats = per_seed.groupby(level=keys, observed=True).agg(["mean", "std", "count"])
    found = {key if isinstance(key, tuple) else (key,): row for key, row in stats.iterrows()}
    result = []
    for line in (line_levels if line_factor is not None else [None]):
        points = [found.get((level,) if line_factor is None else (level, line)) for level in levels]
        if all(point is None for point in points):
            continue
        result.append(Curve(
            label="" if line is None else str(line),
            means=tuple(float("nan") if p is None else float(p["mean"]) for p in points),
            stds=tuple(0.0 if p is None or np.isnan(p["std"]) else float(p["std"]) for p in points),
            seeds=tuple(0 if p is None else int(p["count"]) for p in points)))
    return result


@dataclass(frozen=True)
class Point:
    """One setting (a combination of the compared factors) on the privacy-utility plane."""

    group: str  # the level of the colour factor
    label: str  # the levels of the other compared factors
    utility: float
    privacy: float


def tradeoff_points(rows: pd.DataFrame, utility: str, privacy: str, compared: Sequence[str],
                    colour_factor: str | None) -> list[Point]:
    """Mean over seeds of ``utility`` and ``privacy`` for every setting that has both."""
    rows = rows[rows[utility].notna() & rows[privacy].notna()]
    if rows.empty:
        return []
    keys = list(compared) or ["dataset"]
    means = rows.groupby(keys, observed=True)[[utility, privacy]].mean()
    points = []
    for key, row in means.iterrows():
        values = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        group = str(values.pop(colour_factor)) if colour_factor in values else ""
        label = ", ".join(str(v) for k, v in values.items() if k in compared)
        points.append(Point(group, label, float(row[utility]), float(row[privacy])))
    return points
