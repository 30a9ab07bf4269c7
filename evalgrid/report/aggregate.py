"""The numbers behind the report's views, each comparing like with like.

Seeds are the replicates: a combination of the compared factors has one cell per seed, and its
value is the mean over those cells with their (sample, ddof = 1) standard deviation. A view along
a factor F only ever sets side by side cells that differ in F alone: cells are grouped by the
other compared factors (a *setting*), and only settings with values at two or more levels of F
are compared. Averaging over the other factors instead (a marginal mean) confounds F with
whatever an ``[[exclude]]`` rule, or a cell not run yet, left out at some of its levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalgrid.report.run import Level

Setting = tuple[Level, ...]  # the levels of the other compared factors, in their order


def seed_stats(rows: pd.DataFrame, metric: str, keys: Sequence[str]) -> dict[tuple, tuple[float, float, int]]:
    """(mean, std, seeds) of ``metric`` over seeds for every combination of ``keys`` that has a
    value: each seed's cells are averaged first; std is NaN with a single seed."""
    rows = rows[rows[metric].notna()]
    if rows.empty:
        return {}
    keys = list(keys)
    rows = rows.assign(_all=0) if not keys else rows
    keys = keys or ["_all"]
    per_seed = rows.groupby([*keys, "seed"], observed=True)[metric].mean()
    stats = per_seed.groupby(level=list(range(len(keys))), observed=True).agg(["mean", "std", "count"])
    found = {}
    for key, (mean, std, seeds) in zip(stats.index, stats.itertuples(index=False, name=None)):
        key = _plain(key if isinstance(key, tuple) else (key,))
        found[() if keys == ["_all"] else key] = (float(mean), float(std), int(seeds))
    return found


def aliases(rows: pd.DataFrame, factors: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Factors whose levels go one-to-one among ``rows`` (zipped factors, or factors an exclusion
    pairs up, such as each attack with its prior): their effects cannot be told apart, so the
    views take each group as one factor. First factor of each group → the others (possibly none)."""
    group_of = {name: name for name in factors}
    for index, first in enumerate(factors):
        for second in factors[index + 1:]:
            if group_of[second] == second and _one_to_one(rows, first, second):
                group_of[second] = group_of[first]
    return {name: tuple(other for other in factors if other != name and group_of[other] == name)
            for name in factors if group_of[name] == name}


def _one_to_one(rows: pd.DataFrame, first: str, second: str) -> bool:
    pairs = rows[[first, second]].drop_duplicates()
    return len(pairs) == pairs[first].nunique() == pairs[second].nunique()


@dataclass(frozen=True)
class Series:
    """One setting's values along the compared factor: per level, NaN (and 0 seeds) where none."""

    setting: Setting
    means: tuple[float, ...]
    stds: tuple[float, ...]  # 0 where fewer than two seeds have a value
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Comparison:
    """``metric`` along ``factor``: one series per setting of ``others`` that has values at two
    or more of the levels; the settings with one level only are counted, not shown."""

    metric: str
    factor: str
    others: tuple[str, ...]
    levels: tuple[Level, ...]  # the factor's levels some series has a value at, in grid order
    series: tuple[Series, ...]
    single_level: int  # settings left out: a value at one level of the factor only


def comparison(rows: pd.DataFrame, metric: str, factor: str, levels: Sequence[Level],
               others: Sequence[str]) -> Comparison:
    """Compare ``metric`` across the ``levels`` of ``factor`` within each setting of ``others``."""
    by_setting: dict[Setting, dict[Level, tuple[float, float, int]]] = {}
    for key, stats in seed_stats(rows, metric, [*others, factor]).items():
        by_setting.setdefault(key[:-1], {})[key[-1]] = stats
    compared = {setting: found for setting, found in by_setting.items() if len(found) > 1}
    shown = tuple(level for level in levels if any(level in found for found in compared.values()))
    series = tuple(_series(setting, found, shown) for setting, found in compared.items())
    return Comparison(metric, factor, tuple(others), shown, series, len(by_setting) - len(compared))


def _series(setting: Setting, found: dict[Level, tuple[float, float, int]], levels: Sequence[Level]) -> Series:
    stats = [found.get(level, (float("nan"), float("nan"), 0)) for level in levels]
    return Series(setting, tuple(mean for mean, _, _ in stats),
                  tuple(0.0 if np.isnan(std) else std for _, std, _ in stats), tuple(n for _, _, n in stats))


@dataclass(frozen=True)
class TableRow:
    """One combination of the compared factors: each metric's (mean, std, seeds) over seeds."""

    levels: tuple[Level, ...]
    stats: tuple[tuple[float, float, int], ...]  # per metric; (NaN, NaN, 0) where no value
    done: int
    failed: int
    budget_share: float | None  # the smallest budget_share of its done cells; None when unknown


def table_rows(results: pd.DataFrame, metrics: Sequence[str], factors: Sequence[str]) -> list[TableRow]:
    """A row per combination of ``factors`` with a done or failed cell, in grid order."""
    done = results[results["status"] == "done"]
    stats = [seed_stats(done, metric, factors) for metric in metrics]
    done_counts, failed_counts = _counts(done, factors), _counts(results[results["status"] == "failed"], factors)
    shares = _smallest(done, "budget_share", factors) if "budget_share" in results.columns else {}
    combinations = sorted(set(done_counts) | set(failed_counts), key=_grid_order(results, factors))
    missing = (float("nan"), float("nan"), 0)
    return [TableRow(key, tuple(found.get(key, missing) for found in stats), done_counts.get(key, 0),
                     failed_counts.get(key, 0), shares.get(key)) for key in combinations]


def _counts(rows: pd.DataFrame, factors: Sequence[str]) -> dict[tuple, int]:
    if rows.empty:
        return {}
    if not factors:
        return {(): len(rows)}
    sizes = rows.groupby(list(factors), observed=True).size()
    return {_plain(key if isinstance(key, tuple) else (key,)): int(n) for key, n in sizes.items() if n}


def _smallest(rows: pd.DataFrame, column: str, factors: Sequence[str]) -> dict[tuple, float]:
    rows = rows[rows[column].notna()]
    if rows.empty:
        return {}
    if not factors:
        return {(): float(rows[column].min())}
    least = rows.groupby(list(factors), observed=True)[column].min()
    return {_plain(key if isinstance(key, tuple) else (key,)): float(v) for key, v in least.items()}


def _grid_order(results: pd.DataFrame, factors: Sequence[str]):
    """Sort key of a combination: each factor's category order (sorted values for plain columns)."""
    ranks = []
    for name in factors:
        column = results[name]
        order = list(column.cat.categories) if isinstance(column.dtype, pd.CategoricalDtype) else sorted(
            column.dropna().unique().tolist())
        ranks.append({value: index for index, value in enumerate(order)})
    return lambda key: tuple(rank.get(level, len(rank)) for rank, level in zip(ranks, key))


@dataclass(frozen=True)
class Heatmap:
    """``metric`` for every pair of levels of two factors, each averaged over the same settings of
    the others: those with a value for every shown pair. The pairs shown are those of the setting
    with the most pairs (of those, the one most other settings have too)."""

    metric: str
    factors: tuple[str, str]  # (rows, columns)
    levels: tuple[tuple[Level, ...], tuple[Level, ...]]
    values: tuple[tuple[float, ...], ...]  # [row][column]; NaN where blank
    elsewhere: frozenset[tuple[Level, Level]]  # pairs with values only in settings left out
    others: tuple[str, ...]
    settings: tuple[Setting, ...]  # averaged over
    left_out: tuple[Setting, ...]  # settings without a value for some shown pair


def heatmap(rows: pd.DataFrame, metric: str, factors: tuple[str, str],
            levels: tuple[Sequence[Level], Sequence[Level]], others: Sequence[str]) -> Heatmap | None:
    """The two-factor view of ``metric`` (None without values); each setting's pair value is its
    mean over seeds, and a shown pair is the mean of those over the chosen settings."""
    by_setting: dict[Setting, dict[tuple[Level, Level], float]] = {}
    for key, (mean, _, _) in seed_stats(rows, metric, [*others, *factors]).items():
        by_setting.setdefault(key[:-2], {})[key[-2:]] = mean
    if not by_setting:
        return None
    settings = list(by_setting)

    def supersets(pairs: set) -> list[Setting]:
        return [s for s in settings if pairs <= by_setting[s].keys()]

    best = max(settings, key=lambda s: (len(by_setting[s]), len(supersets(set(by_setting[s])))))
    shown = set(by_setting[best])
    used = supersets(shown)
    everywhere = {pair for found in by_setting.values() for pair in found}
    values = tuple(tuple(float(np.mean([by_setting[s][(r, c)] for s in used])) if (r, c) in shown else float("nan")
                         for c in levels[1]) for r in levels[0])
    return Heatmap(metric, factors, (tuple(levels[0]), tuple(levels[1])), values, frozenset(everywhere - shown),
                   tuple(others), tuple(used), tuple(s for s in settings if s not in used))


@dataclass(frozen=True)
class TradeoffPoint:
    """One setting on the privacy-utility plane, its means over seeds."""

    levels: tuple[Level, ...]  # of the compared factors
    utility: float
    privacy: tuple[float, ...]  # per privacy metric; NaN where not measured
    seeds: int
    utility_round: int | None  # the stage_round the utility was read at, when paired across stages


def tradeoff_points(rows: pd.DataFrame, utility: str, privacy: Sequence[str], compared: Sequence[str],
                    stage: str = "stage") -> list[TradeoffPoint]:
    """Each setting's privacy with its utility. Utility is a property of the trained federation:
    when ``stage`` is compared, each cell's privacy (at its attacked stage) is paired with the
    utility of the same other factors and seed at the most-trained stage (the largest
    ``stage_round``; a setting and seed without it has no point); otherwise with its own cell's."""
    if stage in compared:
        rows = _with_trained_utility(rows, utility, [f for f in compared if f != stage])
    else:
        rows = rows.assign(_utility=rows[utility], _round=np.nan)
    rows = rows[rows["_utility"].notna() & rows[list(privacy)].notna().any(axis=1)]
    if rows.empty:
        return []
    keys = list(compared) or ["_all"]
    rows = rows.assign(_all=0)
    means = rows.groupby(keys, observed=True).agg(
        _utility=("_utility", "mean"), _round=("_round", "max"), _seeds=("seed", "nunique"),
        **{name: (name, "mean") for name in privacy})
    points = []
    for key, row in means.iterrows():
        levels = () if not compared else _plain(key if isinstance(key, tuple) else (key,))
        paired_round = None if pd.isna(row["_round"]) else int(row["_round"])
        points.append(TradeoffPoint(levels, float(row["_utility"]), tuple(float(row[m]) for m in privacy),
                                    int(row["_seeds"]), paired_round))
    return points


def _with_trained_utility(rows: pd.DataFrame, utility: str, setting: Sequence[str]) -> pd.DataFrame:
    """``rows`` with ``_utility`` and ``_round``: the utility of the most-trained stage (the
    largest ``stage_round`` with a utility) at each row's setting and seed; NaN where that cell
    has none (failed, not run), never another round's."""
    keys = [*setting, "seed"]
    measured = rows[rows[utility].notna() & rows["stage_round"].notna()]
    if measured.empty:
        return rows.assign(_utility=np.nan, _round=np.nan)
    last = measured["stage_round"].max()
    trained = (measured[measured["stage_round"] == last].groupby(keys, observed=True)
               .agg(_utility=(utility, "mean"), _round=("stage_round", "max")).reset_index())
    as_objects = {name: object for name in keys}  # categoricals of different categories do not merge
    paired = rows[keys].astype(as_objects).merge(trained.astype(as_objects), on=keys, how="left")
    return rows.assign(_utility=paired["_utility"].to_numpy(dtype=float),
                       _round=paired["_round"].to_numpy(dtype=float))


def _plain(key: tuple) -> tuple:
    """numpy scalars as Python values (a level compares and prints as the grid's)."""
    return tuple(value.item() if isinstance(value, np.generic) else value for value in key)
