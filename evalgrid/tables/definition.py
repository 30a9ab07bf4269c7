"""Table definitions (analysis/tables/NAME.toml): which grid, which keys, which values, which trend.

The format is documented in analysis/tables/README.md. A definition is data: it is parsed
and checked here, field by field, and every mistake names the file, the key and the choices.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgrid.errors import UserError, choices_sentence, did_you_mean

TOP_LEVEL = ("title", "paper", "kind", "grid", "smoke", "published", "published_where", "notes", "rows", "columns",
             "keys", "values", "trend", "curve_at")
def curve_columns() -> tuple[str, ...]:
    """The columns a table read along its cells' convergence records (``curve_at``) may use beside
    the results': the share of the trial's steps (one of curve_at), and the loss and each curve
    metric (``curve_psnr``) recorded there."""
    from evalgrid.store.curves import curve_metrics

    return ("curve_share", "curve_loss", *(f"curve_{metric}" for metric in curve_metrics()))
# What a table or figure of a paper is: published numbers, a plot (its stated trend), a picture
# (reconstructions beside the originals), or not an experiment (a survey, a diagram).
KINDS = ("numbers", "figure", "picture", "not an experiment", "not reproduced yet")
NOT_AN_EXPERIMENT = "not an experiment"
NOT_REPRODUCED = "not reproduced yet"  # an experiment evalgrid cannot run yet: the reason says what is missing
LISTED_ONLY = (NOT_AN_EXPERIMENT, NOT_REPRODUCED)
LISTED_FIELDS = ("title", "paper", "kind", "reason")  # all a definition of something not measured has
KEY_FIELDS = ("factor", "option", "column", "map", "stand_in", "match")
VALUE_FIELDS = ("measured", "fallback", "per")
TREND_FIELDS = ("value", "along", "kind", "reference", "expect", "expect_source", "unclaimed", "claimed_from",
                "claimed_to")
TREND_KINDS = ("monotone", "reference", "rank")
# Columns of `evalgrid table --format csv` beside the keys: no key may take these names (nor
# trend_*, nor measured_*: a mapped key's column of the values it had before its map).
OUTPUT_COLUMNS = ("measure", "measured_column", "measured_mean", "measured_std", "samples", "cells", "published",
                  "difference", "trend")
EXPECTATIONS = {"monotone": ("increasing", "decreasing"), "reference": ("higher", "lower"), "rank": ()}


@dataclass(frozen=True)
class Match:
    """``value`` for a cell whose component has every option in ``when`` (and its ``name``)."""

    when: tuple[tuple[str, Any], ...]
    value: Any


@dataclass(frozen=True)
class Key:
    """Where a key's measured value comes from, and how it becomes the paper's label."""

    name: str
    factor: str = ""
    option: str = ""
    column: str = ""
    mapping: tuple[tuple[str, Any], ...] = ()  # `map` and `stand_in` together: measured text -> the paper's value
    matches: tuple[Match, ...] = ()
    # The measured texts of `stand_in`: another setting than the paper's (the smoke's digits for
    # CIFAR-10), not another name of it; a table says what was measured in their rows.
    stand_ins: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Value:
    name: str  # the published column (or the shown name, for a figure)
    measured: str  # a result column
    fallback: str = ""  # the result column used when the run has no `measured` values
    per: str = ""  # divide by this result column


@dataclass(frozen=True)
class Trend:
    value: str
    along: str
    kind: str
    reference: Any = None
    expect: str = ""
    expect_source: str = ""
    # Levels the stated claim (expect) does not cover, e.g. a defense the paper says has no
    # effect: never judged, rather than judged against a direction the paper does not give.
    unclaimed: tuple[str, ...] = ()
    # Series the stated claim covers: those whose key (numeric) is at least the value, e.g.
    # {"dimension": 2048} for a claim about high-dimensional data. The others are not judged.
    claimed_from: tuple[tuple[str, float], ...] = ()
    # ... and those whose key is at most the value, e.g. {"share": 20} for a claim about the
    # smallest shares of an update.
    claimed_to: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class TableDefinition:
    name: str
    source: Path  # the definition file
    title: str
    paper: str
    kind: str  # one of KINDS
    grid: Path
    smoke: Path | None
    published: Path | None
    published_where: tuple[tuple[str, Any], ...]
    notes: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    keys: tuple[Key, ...]
    values: tuple[Value, ...]
    trends: tuple[Trend, ...]
    # Shares of each trial's steps (0 < share <= 1) at which the cells' convergence records are
    # read (curve.csv): each cell then gives one row per share, with the curve_columns().
    curve_at: tuple[float, ...] = ()

    @property
    def key_names(self) -> tuple[str, ...]:
        return (*self.rows, *self.columns)

    def key(self, name: str) -> Key:
        return next(key for key in self.keys if key.name == name)

    def value(self, name: str) -> Value:
        return next(value for value in self.values if value.name == name)


class _Reader:
    """Checks one definition file; ``fail`` names the file and the key."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    def fail(self, key: str, message: str) -> UserError:
        return UserError(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")

    def check_names(self, table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for name in table:
            if name not in allowed:
                raise self.fail(f"{where}{name}", f"unknown key.{did_you_mean(name, allowed)} "
                                                  f"{choices_sentence(allowed)}")

    def text(self, key: str, required: bool = True) -> str:
        value = self.data.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(key, f"expected a non-empty string, got {value!r}.")
        return value

    def path_to(self, key: str, required: bool) -> Path | None:
        raw = self.data.get(key)
        if raw is None and not required:
            return None
        if not isinstance(raw, str) or not raw:
            raise self.fail(key, f"expected a file path (relative to the definition), got {raw!r}.")
        path = (self.path.parent / raw).resolve()
        if not path.is_file():
            raise self.fail(key, f"{raw!r} does not exist (looked for {path}).")
        return path

    def names(self, key: str) -> tuple[str, ...]:
        raw = self.data.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
            raise self.fail(key, f"expected a list of key names, got {raw!r}.")
        return tuple(raw)

    def table(self, key: str) -> dict[str, Any]:
        raw = self.data.get(key, {})
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a table, got {raw!r}.")
        return raw

    def columns(self) -> list[str]:
        """The result columns a key or value may read (with ``curve_at``, the curve's too)."""
        from evalgrid.store.results import result_schema

        return [*result_schema().names, *(curve_columns() if "curve_at" in self.data else ())]

    def unknown_column(self, key: str, column: str, columns: list[str]) -> UserError:
        if column in curve_columns():
            return self.fail(key, f"{column!r} is read from the cells' convergence records: give the shares of the "
                                  f"trials' steps to read them at, e.g. curve_at = [0.1, 0.5, 1.0].")
        return self.fail(key, f"unknown result column {column!r}.{did_you_mean(column, columns)} "
                              f"{choices_sentence(columns)}")

    def curve_at(self) -> tuple[float, ...]:
        raw = self.data.get("curve_at", [])
        if not isinstance(raw, list) or not all(isinstance(share, (int, float)) and not isinstance(share, bool)
                                                and 0 < share <= 1 for share in raw):
            raise self.fail("curve_at", f"expected a list of shares of the trials' steps, each in (0, 1], got {raw!r}.")
        return tuple(float(share) for share in raw)

    def key(self, name: str, raw: Any) -> Key:
        from evalgrid.grid.factors import FACTORS

        columns = self.columns()
        where = f"keys.{name}"
        if not isinstance(raw, dict):
            raise self.fail(where, f"expected a table, got {raw!r}.")
        self.check_names(raw, KEY_FIELDS, f"{where}.")
        sources = [field for field in ("factor", "column") if field in raw]
        if len(sources) != 1:
            raise self.fail(where, "give exactly one source: factor = \"NAME\" (optionally with option = "
                                   "\"OPTION\") or column = \"RESULT_COLUMN\".")
        factor, column, option = raw.get("factor", ""), raw.get("column", ""), raw.get("option", "")
        if factor and factor not in FACTORS:
            raise self.fail(f"{where}.factor", f"unknown factor {factor!r}.{did_you_mean(factor, FACTORS.names())} "
                                               f"{choices_sentence(FACTORS.names())}")
        if column and column not in columns:
            raise self.unknown_column(f"{where}.column", column, columns)
        if option and not factor:
            raise self.fail(f"{where}.option", "an option is read from a factor's component: add factor = \"NAME\".")
        tables = {}
        for field in ("map", "stand_in"):
            tables[field] = raw.get(field, {})
            if not isinstance(tables[field], dict):
                raise self.fail(f"{where}.{field}", f"expected a table of measured value = published value, "
                                                    f"got {tables[field]!r}.")
        both = set(tables["map"]) & set(tables["stand_in"])
        if both:
            raise self.fail(f"{where}.stand_in", f"{sorted(both)} also in map: a measured value is either another "
                                                 f"name of the paper's (map) or a stand-in for it (stand_in).")
        mapping = (*tables["map"].items(), *tables["stand_in"].items())
        return Key(name, factor, option, column, mapping, self.matches(where, raw.get("match", [])),
                   frozenset(tables["stand_in"]))

    def matches(self, where: str, raw: Any) -> tuple[Match, ...]:
        if not isinstance(raw, list):
            raise self.fail(f"{where}.match", f"expected a list of {{ when = {{...}}, value = ... }}, got {raw!r}.")
        matches = []
        for index, entry in enumerate(raw):
            if not isinstance(entry, dict) or set(entry) != {"when", "value"} or not isinstance(entry["when"], dict):
                raise self.fail(f"{where}.match[{index}]",
                                f"expected {{ when = {{ option = value, ... }}, value = ... }}, got {entry!r}.")
            matches.append(Match(tuple(entry["when"].items()), entry["value"]))
        return tuple(matches)

    def value(self, name: str, raw: Any) -> Value:
        columns = self.columns()
        where = f"values.{name}"
        if not isinstance(raw, dict):
            raise self.fail(where, f"expected a table, got {raw!r}.")
        self.check_names(raw, VALUE_FIELDS, f"{where}.")
        fields = {}
        for field in VALUE_FIELDS:
            column = raw.get(field, "")
            if field == "measured" and not column:
                raise self.fail(f"{where}.measured", "required: the result column measured for this value.")
            if column and column not in columns:
                raise self.unknown_column(f"{where}.{field}", column, columns)
            fields[field] = column
        return Value(name, **fields)

    def trends(self, keys: tuple[str, ...], values: tuple[Value, ...], published: bool) -> tuple[Trend, ...]:
        """``[trend]`` (one) or ``[[trend]]`` (several claims of the paper about one table)."""
        raw = self.data.get("trend", [])
        tables = [raw] if isinstance(raw, dict) else raw
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail("trend", f"expected a [trend] table or [[trend]] tables, got {raw!r}.")
        return tuple(self.trend(t, f"trend[{i}]" if isinstance(raw, list) else "trend", keys, values, published)
                     for i, t in enumerate(tables))

    def trend(self, raw: dict[str, Any], where: str, keys: tuple[str, ...], values: tuple[Value, ...],
              published: bool) -> Trend:
        self.check_names(raw, TREND_FIELDS, f"{where}.")
        value = raw.get("value", values[0].name)
        if value not in [v.name for v in values]:
            raise self.fail(f"{where}.value", f"{value!r} is not a value of the table. "
                                           f"{choices_sentence(v.name for v in values)}")
        along = raw.get("along")
        if along not in keys:
            raise self.fail(f"{where}.along", f"{along!r} is not a key of the table.{did_you_mean(along, keys)} "
                                           f"{choices_sentence(keys)}")
        kind = raw.get("kind", "monotone")
        if kind not in TREND_KINDS:
            raise self.fail(f"{where}.kind", f"unknown kind {kind!r}.{did_you_mean(kind, TREND_KINDS)} "
                                          f"{choices_sentence(TREND_KINDS)}")
        if (kind == "reference") != ("reference" in raw):
            raise self.fail(f"{where}.reference", "kind = \"reference\" needs a reference level, and only it takes one.")
        expect = raw.get("expect", "")
        if published and expect:
            raise self.fail(f"{where}.expect", "the published values give the paper's direction: expect is only for "
                                            "tables without a published CSV.")
        if not published:
            if expect not in EXPECTATIONS[kind] or not expect:
                raise self.fail(f"{where}.expect", f"without a published CSV the paper's claim must be stated: "
                                                f"expect = one of {', '.join(EXPECTATIONS[kind]) or '(none)'} "
                                                f"(kind {kind!r}), with expect_source.")
            if not str(raw.get("expect_source", "")).strip():
                raise self.fail(f"{where}.expect_source", "say where the paper makes the claim (section, figure).")
        unclaimed = raw.get("unclaimed", [])
        if unclaimed and (not expect or kind != "reference"):
            raise self.fail(f"{where}.unclaimed", "only a stated claim (expect, kind = \"reference\") leaves levels "
                                               "unclaimed; published values give every level its own direction.")
        if not isinstance(unclaimed, list) or not all(isinstance(u, str) for u in unclaimed):
            raise self.fail(f"{where}.unclaimed", f"expected a list of level names, got {unclaimed!r}.")
        bounds = {field: self.claim_bounds(raw, field, where, keys, along, expect)
                  for field in ("claimed_from", "claimed_to")}
        return Trend(value, along, kind, raw.get("reference"), expect, str(raw.get("expect_source", "")),
                     tuple(unclaimed), **bounds)

    def claim_bounds(self, raw: dict[str, Any], field: str, where: str, keys: tuple[str, ...], along: str,
                     expect: str) -> tuple[tuple[str, float], ...]:
        """``claimed_from`` / ``claimed_to``: { key = number } bounding the series a stated claim covers."""
        bounds = raw.get(field, {})
        if bounds and not expect:
            raise self.fail(f"{where}.{field}", "only a stated claim (expect) covers some series; published "
                                                "values give every series its own direction.")
        if not isinstance(bounds, dict) or not all(
                name in keys and name != along and isinstance(bound, (int, float)) and not isinstance(bound, bool)
                for name, bound in bounds.items()):
            raise self.fail(f"{where}.{field}", f"expected {{ key = number }} with keys of the table other than "
                                                f"`along` ({', '.join(k for k in keys if k != along)}), got {bounds!r}.")
        return tuple((name, float(bound)) for name, bound in bounds.items())

    def definition(self, name: str) -> TableDefinition:
        self.check_names(self.data, TOP_LEVEL, "")
        rows, columns = self.names("rows"), self.names("columns")
        if not rows:
            raise self.fail("rows", "list at least one key the table's rows are made of.")
        keys_table = self.table("keys")
        wanted = (*rows, *columns)
        for name_ in wanted:
            if name_ in OUTPUT_COLUMNS or f"measured_{name_}" in OUTPUT_COLUMNS or name_.startswith(
                    ("trend_", "measured_")):
                raise self.fail(f"keys.{name_}", f"a name the table's output uses for itself "
                                                 f"({', '.join(OUTPUT_COLUMNS)}, trend_*, measured_<key> (the value "
                                                 f"a mapped key had before its map)): rename the key.")
        for name_ in wanted:
            if name_ not in keys_table:
                raise self.fail(f"keys.{name_}", "missing: every key of rows and columns needs a [keys.NAME] table.")
        for name_ in keys_table:
            if name_ not in wanted:
                raise self.fail(f"keys.{name_}", f"not used by rows or columns. {choices_sentence(wanted)}")
        values_table = self.table("values")
        if not values_table:
            raise self.fail("values", "define at least one [values.NAME] with measured = \"RESULT_COLUMN\".")
        where = self.table("published_where")
        notes = self.data.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise self.fail("notes", f"expected a list of strings, got {notes!r}.")
        values = tuple(self.value(n, raw) for n, raw in values_table.items())
        published = self.path_to("published", required=False)
        kind = self.data.get("kind", "numbers" if published is not None else "figure")
        if kind not in KINDS[:3]:
            raise self.fail("kind", f"{kind!r}: a definition with a grid is one of {', '.join(KINDS[:3])}.")
        if kind == "numbers" and published is None:
            raise self.fail("published", "kind = \"numbers\" needs the CSV of the published numbers.")
        return TableDefinition(
            name=name, source=self.path, title=self.text("title"), paper=self.text("paper"), kind=kind,
            grid=self.path_to("grid", required=True), smoke=self.path_to("smoke", required=False),
            published=published, published_where=tuple(where.items()), notes=tuple(notes), rows=rows,
            columns=columns, keys=tuple(self.key(n, keys_table[n]) for n in wanted), values=values,
            trends=self.trends(wanted, values, published is not None), curve_at=self.curve_at())


@dataclass(frozen=True)
class ListedOnly:
    """A table or figure of a paper without a grid: not an experiment (a survey of the
    literature, a diagram), or an experiment evalgrid cannot run yet; listed with the reason."""

    name: str
    source: Path
    title: str
    paper: str
    kind: str  # one of LISTED_ONLY
    reason: str


def read_definition(path: Path) -> TableDefinition | ListedOnly:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: invalid TOML: {error}.") from None
    reader = _Reader(path, data)
    if data.get("kind") in LISTED_ONLY:
        reader.check_names(data, LISTED_FIELDS, "")
        return ListedOnly(path.stem, path, reader.text("title"), reader.text("paper"), data["kind"],
                          reader.text("reason"))
    return reader.definition(path.stem)
