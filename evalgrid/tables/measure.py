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
MEASURED_AS = ".measured-as."  # + a key's name: the stand-in a cell measured (e.g. digits for cifar10)


def measured_as_column(key: str) -> str:
    return MEASURED_AS + key


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


def label_text(value: Any) -> str:
    """A key's value as a table prints it: 16 rather than 16.0, booleans as TOML writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def key_value(key: Key, config: dict[str, Any], row: pd.Series | None) -> Any:
    """The key's value for one cell, after ``match`` and ``map``."""
    return _mapped(key, unmapped_key_value(key, config, row))


def unmapped_key_value(key: Key, config: dict[str, Any], row: pd.Series | None) -> Any:
    """The key's value for one cell after ``match``, before ``map``: what the cell measured
    (digits, where the table shows the paper's cifar10)."""
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
    return value


def is_stand_in(key: Key, measured: Any) -> bool:
    """Whether a cell that measured ``measured`` (before ``map``) stands in for the paper's setting."""
    return canonical(measured) in key.stand_ins or str(measured) in key.stand_ins


def _mapped(key: Key, value: Any) -> Any:
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
    """One row per (done cell, value, seed × trial sample): the keys, the value's name, the sample,
    and, for a key with stand-ins, the stand-in the cell measured ("" for the paper's own setting;
    :func:`measured_as_column`)."""
    records = []
    for _, row in frame[frame["status"] == "done"].iterrows():
        config = json.loads(row["config"])
        keys, measured_as = {}, {}
        for key in definition.keys:
            value = unmapped_key_value(key, config, row)
            keys[key.name] = _mapped(key, value)
            if key.stand_ins:
                measured_as[measured_as_column(key.name)] = label_text(value) if is_stand_in(key, value) else ""
        for name, measured in columns.items():
            for sample in _samples(row, measured.column, measured.value.per):
                records.append({**keys, **measured_as, VALUE: name, SAMPLE: sample, CELL: row["cell_id"]})
    columns_as = [measured_as_column(key.name) for key in definition.keys if key.stand_ins]
    return pd.DataFrame.from_records(records, columns=[*definition.key_names, *columns_as, VALUE, SAMPLE, CELL])


def aggregate(long: pd.DataFrame, definition: TableDefinition) -> pd.DataFrame:
    """Mean, std (over seeds × trials; NaN from one sample), samples and cells per keys and value,
    and for each key with stand-ins the stand-ins its cells measured, in order, joined by ", "."""
    by = [*definition.key_names, VALUE]
    measured_as = [column for column in long.columns if column.startswith(MEASURED_AS)]
    if long.empty:
        return pd.DataFrame(columns=[*by, "mean", "std", "n", "cells", *measured_as])
    grouped = long.groupby(by, sort=False, dropna=False)
    stats = grouped[SAMPLE].agg(mean="mean", std="std", n="count")
    stats["cells"] = grouped[CELL].nunique()
    for column in measured_as:
        stats[column] = grouped[column].agg(lambda texts: ", ".join(dict.fromkeys(t for t in texts if t)))
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
