"""The measured side of a table: each done cell's keys (as the paper labels them) and its values,
aggregated to mean ± std over seeds and trials."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalgrid.store.results import per_sample_metrics
from evalgrid.tables.definition import Key, TableDefinition, Value

# Columns of the measured frames beside the keys: names no key can take (a key is a CSV column).
VALUE, SAMPLE, CELL = ".value", ".sample", ".cell"


def canonical(value: Any) -> str:
    """The text two sides are joined on: numbers by value (16 = 16.0 = "16"), booleans as TOML
    writes them, missing values as ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def _component(config: dict[str, Any], factor: str) -> dict[str, Any] | None:
    """The factor's component ({name, options}); a defense chain of one step counts as that step,
    an empty chain as "none"."""
    value = config[factor]
    if isinstance(value, list):
        if len(value) > 1:
            return None
        return value[0] if value else {"name": "none", "options": {}}
    return value if isinstance(value, dict) else None


def _factor_value(config: dict[str, Any], factor: str) -> Any:
    value = config[factor]
    if isinstance(value, list):  # a defense chain
        return "+".join(step["name"] for step in value) or "none"
    if isinstance(value, dict):  # a component
        return value["name"]
    return value


def key_value(key: Key, config: dict[str, Any], row: pd.Series | None) -> Any:
    """The key's value for one cell, after ``match`` and ``map``."""
    component = _component(config, key.factor) if key.factor else None
    if key.column:
        value = row[key.column]
    elif key.option:
        value = (component or {}).get("options", {}).get(key.option)
    else:
        value = _factor_value(config, key.factor)
    if key.matches and component is not None:
        options = {"name": component["name"], **component.get("options", {})}
        for match in key.matches:
            if all(name in options and canonical(options[name]) == canonical(wanted) for name, wanted in match.when):
                value = match.value
                break
    mapping = dict(key.mapping)
    return mapping.get(canonical(value), mapping.get(str(value), value))


@dataclass(frozen=True)
class MeasuredValue:
    """Which result column a value was read from (``fallback`` when the run lacks ``measured``)."""

    value: Value
    column: str

    @property
    def is_fallback(self) -> bool:
        return self.column != self.value.measured


def measured_columns(frame: pd.DataFrame, definition: TableDefinition) -> dict[str, MeasuredValue]:
    chosen = {}
    for value in definition.values:
        column = value.measured
        if not _has_values(frame, column) and value.fallback and _has_values(frame, value.fallback):
            column = value.fallback
        chosen[value.name] = MeasuredValue(value, column)
    return chosen


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and pd.to_numeric(frame[column], errors="coerce").notna().any()


def _samples(row: pd.Series, column: str, per: str) -> list[float]:
    """One value per trial for per-sample metrics (the batch's mean), else the cell's value."""
    per_sample = row.get(f"{column}_per_sample") if column in per_sample_metrics() else None
    if per_sample is not None and len(per_sample):
        values = [float(np.mean(trial)) for trial in per_sample if len(trial)]
    else:
        values = [float(row[column])] if pd.notna(row[column]) else []
    if per:
        values = [v / float(row[per]) for v in values]
    return [v for v in values if not math.isnan(v)]


def measured_long(frame: pd.DataFrame, definition: TableDefinition,
                  columns: dict[str, MeasuredValue]) -> pd.DataFrame:
    """One row per (done cell, value, seed × trial sample): the keys, the value's name, the sample."""
    records = []
    for _, row in frame[frame["status"] == "done"].iterrows():
        config = json.loads(row["config"])
        keys = {key.name: key_value(key, config, row) for key in definition.keys}
        for name, measured in columns.items():
            for sample in _samples(row, measured.column, measured.value.per):
                records.append({**keys, VALUE: name, SAMPLE: sample, CELL: row["cell_id"]})
    return pd.DataFrame.from_records(records, columns=[*definition.key_names, VALUE, SAMPLE, CELL])


def aggregate(long: pd.DataFrame, definition: TableDefinition) -> pd.DataFrame:
    """Mean, std (over seeds × trials; NaN from one sample), samples and cells per keys and value."""
    by = [*definition.key_names, VALUE]
    if long.empty:
        return pd.DataFrame(columns=[*by, "mean", "std", "n", "cells"])
    grouped = long.groupby(by, sort=False, dropna=False)
    stats = grouped[SAMPLE].agg(mean="mean", std="std", n="count")
    stats["cells"] = grouped[CELL].nunique()
    return stats.reset_index()


def along_curves(frame: pd.DataFrame, curves: pd.DataFrame, shares: tuple[float, ...]) -> pd.DataFrame:
    """Each done cell with a convergence record, once per share s of ``shares``: its row with
    ``curve_share`` = s, and ``curve_loss`` and ``curve_<metric>`` for each curve metric = the
    means over its trials of the last point recorded at or before s × the trial's last recorded
    step (a trial with no point that early gives none). Cells without a record give no rows."""
    measured = [name for name in curves.columns if name not in ("cell_id", "trial", "iteration")]
    columns = [*frame.columns, "curve_share", *(f"curve_{name}" for name in measured)]
    rows = []
    done = frame[frame["status"] == "done"]
    for cell_id, points in curves.groupby("cell_id", sort=False):
        cell = done[done["cell_id"] == cell_id]
        if cell.empty:
            continue
        trials = [trial for _, trial in points.sort_values("iteration").groupby("trial")]
        for share in shares:
            picked = [trial[trial["iteration"] <= share * trial["iteration"].max()].tail(1) for trial in trials]
            picked = [point for point in picked if not point.empty]
            if not picked:
                continue
            at = pd.concat(picked)
            rows.append(cell.iloc[0].to_dict() | {"curve_share": share}
                        | {f"curve_{name}": float(at[name].mean()) for name in measured})
    return pd.DataFrame.from_records(rows, columns=columns)
