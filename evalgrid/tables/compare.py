"""Published numbers beside measured ones: one compared row per key combination and value."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from evalgrid.errors import UserError
from evalgrid.tables.definition import TableDefinition
from evalgrid.tables.measure import VALUE, MeasuredValue, canonical, label_text, measured_as_column

Keys = tuple[str, ...]  # canonical key texts, in definition.key_names order


@dataclass(frozen=True)
class Compared:
    keys: tuple[str, ...]  # the key values as shown (the paper's text where it has the row)
    value: str
    published: float
    mean: float
    std: float
    n: int
    cells: int
    resolution: float = 0.0  # one unit in the last digit the paper prints for this value (0: none published)
    # Per key: the stand-ins the cells measured ("digits" where keys shows the paper's "cifar10"),
    # ", "-joined; "" for a key without stand-ins, the paper's own setting, or a row nothing measured.
    measured_as: tuple[str, ...] = ()

    @property
    def difference(self) -> float:
        return self.mean - self.published

    def stand_in(self, index: int) -> str:
        """What was measured for key ``index`` where the row shows another, the paper's, value
        (the smoke's digits for the paper's cifar10); "" where the two agree."""
        measured = self.measured_as[index] if index < len(self.measured_as) else ""
        return measured if measured and canonical(measured) != canonical(self.keys[index]) else ""


def read_published(definition: TableDefinition) -> pd.DataFrame:
    """The published CSV's rows for this table (``published_where`` applied), keys and values only."""
    if definition.published is None:
        return pd.DataFrame(columns=[*definition.key_names, *[v.name for v in definition.values]])
    # values as printed: their last digit is the paper's rounding unit (published_resolution)
    table = pd.read_csv(definition.published, comment="#", dtype={v.name: str for v in definition.values})
    for column, wanted in definition.published_where:
        _require_column(definition, table, column, "published_where")
        table = table[table[column].map(canonical) == canonical(wanted)]
    for column in (*definition.key_names, *[v.name for v in definition.values]):
        _require_column(definition, table, column, "keys/values")
    return table.reset_index(drop=True)


def published_resolution(texts: pd.Series) -> float:
    """One unit in the last decimal the paper prints in a column ("0.0044": 1e-4; "18": 1): two
    published values that differ by no more than this may be equal before rounding."""
    decimals = [len(text.strip().partition(".")[2]) for text in texts.dropna().astype(str) if _is_number(text)]
    return 10.0 ** -max(decimals) if decimals else 0.0


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text)) and "e" not in text.lower()
    except ValueError:
        return False


def _require_column(definition: TableDefinition, table: pd.DataFrame, column: str, where: str) -> None:
    if column not in table.columns:
        raise UserError(f"{definition.source}: {where}: {column!r} is not a column of {definition.published} "
                        f"(columns: {', '.join(table.columns)}).")


def compare(definition: TableDefinition, published: pd.DataFrame, measured: pd.DataFrame,
            columns: dict[str, MeasuredValue]) -> list[Compared]:
    """Rows in the paper's order, then measured combinations the paper does not have."""
    names = definition.key_names
    shown: dict[Keys, tuple[str, ...]] = {}
    paper: dict[tuple[Keys, str], float] = {}
    resolution = {v.name: published_resolution(published[v.name]) for v in definition.values}
    for _, row in published.iterrows():
        keys = tuple(canonical(row[name]) for name in names)
        shown.setdefault(keys, tuple(label_text(row[name]) for name in names))
        for value in definition.values:
            paper[keys, value.name] = float(row[value.name]) if pd.notna(row[value.name]) else math.nan
    ours: dict[tuple[Keys, str], pd.Series] = {}
    for _, row in measured.iterrows():
        keys = tuple(canonical(row[name]) for name in names)
        shown.setdefault(keys, tuple(label_text(row[name]) for name in names))
        ours[keys, row[VALUE]] = row
    compared = []
    for keys, text in shown.items():
        for value in definition.values:
            stats = ours.get((keys, value.name))
            if stats is None and (keys, value.name) not in paper:
                continue
            compared.append(Compared(
                text, value.name, paper.get((keys, value.name), math.nan),
                float(stats["mean"]) if stats is not None else math.nan,
                float(stats["std"]) if stats is not None else math.nan,
                int(stats["n"]) if stats is not None else 0, int(stats["cells"]) if stats is not None else 0,
                resolution[value.name], _measured_as(stats, names)))
    return compared


def _measured_as(stats: pd.Series | None, names: tuple[str, ...]) -> tuple[str, ...]:
    if stats is None:
        return ()
    return tuple(str(stats.get(measured_as_column(name), "") or "") for name in names)



def comparable(columns: dict[str, MeasuredValue], value: str) -> bool:
    """A difference means something only when the run measured the paper's own metric."""
    return not columns[value].is_fallback
