"""Turn a merged grid file into a :class:`Grid` of cells, or fail with a :class:`GridError`
that names the file, the key path, the bad value and the valid choices."""

from __future__ import annotations

import dataclasses
import os
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgrid.grid.cell import FACTOR_NAMES, CellConfig, Choice
from evalgrid.errors import GridError, UserError, choices_sentence, did_you_mean
from evalgrid.grid.compatibility import first_incompatibility
from evalgrid.grid.expand import combinations, expand_cells
from evalgrid.grid.factors import FACTORS, REQUIRED, ChainFactor, ComponentFactor
from evalgrid.grid.sections import DataOptions, RunOptions, SlurmOptions
from evalgrid.executors.slurm.resources import parse_slurm_table
from evalgrid.grid.toml_io import MergedToml
from evalgrid.metrics.options import MetricOptions
from evalgrid.catalogue.options import InvalidOption, parse_options

OVERRIDE_SECTIONS = tuple(FACTORS[n].overrides_section for n in FACTORS
                          if isinstance(FACTORS[n], (ComponentFactor, ChainFactor)))
TOP_LEVEL_KEYS = ("name", "description", "metrics", "zip", "factors", *OVERRIDE_SECTIONS,
                  "exclude", "metric_options", "run", "slurm", "data", "extends")
DEFAULT_METRICS = ("psnr", "ssim", "label_acc")


def _control_characters(text: str, allowed: str = "") -> bool:
    """Whether ``text`` holds a control or format character (ESC, BEL, bidi overrides, ...)."""
    return any(unicodedata.category(c)[0] == "C" and c not in allowed for c in text)


@dataclass(frozen=True)
class Grid:
    """A validated grid: its cells and the settings to run them."""

    name: str
    description: str
    source: Path
    metrics: tuple[str, ...]
    varied: tuple[str, ...]  # factors listed in [factors], in file order
    values: dict[str, tuple[Any, ...]]  # every factor's values in grid order (one default if not varied)
    cells: tuple[CellConfig, ...]
    run: RunOptions
    slurm: SlurmOptions
    data_root: Path | None
    stage_cache: Path | None  # [run] stage_cache resolved; None: DIR/stages
    base_dir: Path  # the grid file's folder: relative paths in options (checkpoints) start here
    resolved: dict[str, Any]  # the merged TOML, extends resolved (written to DIR/grid.toml)


def _first_index(seen: dict[Any, int], parsed: list[Any], value: Any, index: int) -> int | None:
    """The index of an earlier equal value, or None (remembering this one)."""
    try:
        first = seen.setdefault(value, index)
        return None if first == index else first
    except TypeError:  # an unhashable value: compare one by one
        return parsed.index(value) if value in parsed else None


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


class _Validator:
    def __init__(self, merged: MergedToml, max_cells: int | None = None):
        self.merged, self.data, self.max_cells = merged, merged.data, max_cells

    def fail(self, key: tuple[str | int, ...], message: str) -> GridError:
        origin = self.merged.origin(*[k for k in key if isinstance(k, str)])
        return GridError(shown(origin), _key_text(key), message)

    def check_cell_count(self, values: dict[str, tuple[Any, ...]], groups, varied) -> None:
        if self.max_cells is None:
            return
        count = combinations(values, groups, varied)
        if count > self.max_cells:
            sizes = ", ".join(f"{name} {len(values[name])}" for name in varied if len(values[name]) > 1)
            raise self.fail(("factors",), f"the factor lists give {count:,} cells ({sizes}; exclude rules not yet "
                                          f"applied), more than the limit of {self.max_cells:,}. If that is "
                                          f"meant, pass --max-cells {count} to plan and run.")

    @contextmanager
    def at(self, *key: str | int) -> Iterator[None]:
        """Re-raise option and registry errors as GridErrors located at ``key``."""
        try:
            yield
        except GridError:
            raise
        except (InvalidOption, UserError) as err:
            raise self.located(key, err) from None

    def located(self, key: tuple[str | int, ...], err: InvalidOption | UserError) -> GridError:
        """An option or registry error as a GridError located at ``key``."""
        if isinstance(err, InvalidOption):
            return self.fail((*key, *([err.key] if err.key else [])), err.message)
        return self.fail(key, str(err))

    def table(self, key: str, required: bool = False) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail((), f"missing required table [{key}].")
            return {}
        if not isinstance(value, dict):
            raise self.fail((key,), f"expected a table, got {value!r}.")
        return value

    def grid(self) -> Grid:
        for key in self.data:
            if key not in TOP_LEVEL_KEYS:
                raise self.fail((key,), f"unknown top-level key.{did_you_mean(key, TOP_LEVEL_KEYS)} "
                                        f"Valid keys: {', '.join(TOP_LEVEL_KEYS)}.")
        name = self.data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.fail(("name",), f"expected a non-empty string naming the grid, got {name!r}.")
        if _control_characters(name):
            raise self.fail(("name",), f"control characters are not allowed in the name (it reaches terminals, job "
                                       f"names and reports), got {name!r}.")
        description = self.data.get("description", "")
        if not isinstance(description, str):
            raise self.fail(("description",), f"expected a string, got {description!r}.")
        if _control_characters(description, allowed="\n\t"):
            raise self.fail(("description",), f"control characters other than newlines and tabs are not allowed, "
                                              f"got {description!r}.")
        metrics = self.metrics()
        sections = {}
        for key, schema in (("run", RunOptions), ("data", DataOptions)):
            with self.at(key):
                sections[key] = parse_options(schema, self.table(key))
        with self.at("slurm"):
            sections["slurm"] = parse_slurm_table(self.table("slurm"))
        self.check_executor(sections["run"])
        self.check_speedups(sections["run"])
        with self.at("metric_options"):
            metric_options = parse_options(MetricOptions, self.table("metric_options"))
        bases = self.component_bases()
        values = self.factor_values(bases)
        varied = tuple(self.table("factors", required=True))
        groups = self.zip_groups(varied, values)
        excludes = self.exclude_rules(varied, bases)
        self.check_cell_count(values, groups, varied)
        cells = expand_cells(values, groups, excludes, metrics, metric_options, varied)
        if not cells:
            raise self.fail(("exclude",), "every combination is excluded: the grid has no cells.")
        problem = first_incompatibility(cells, values)
        if problem:
            raise self.fail(("factors",), problem)
        return Grid(name=name, description=description, source=self.merged.files[-1], metrics=metrics,
                    varied=varied, values=values, cells=cells, run=sections["run"], slurm=sections["slurm"],
                    data_root=self.data_root(sections["data"]),
                    stage_cache=self.relative_path(("run", "stage_cache"), sections["run"].stage_cache),
                    base_dir=self.merged.files[-1].resolve().parent, resolved=self.data)

    def metrics(self) -> tuple[str, ...]:
        from evalgrid.catalogue import METRICS

        raw = self.data.get("metrics", list(DEFAULT_METRICS))
        if not isinstance(raw, list) or not raw:
            raise self.fail(("metrics",), f"expected a non-empty list of metric names, got {raw!r}. "
                                          f"{choices_sentence(METRICS.names())}")
        for index, name in enumerate(raw):
            if not isinstance(name, str):
                raise self.fail(("metrics", index), f"expected a metric name (a string), got {name!r}. "
                                                    f"{choices_sentence(METRICS.names())}")
            if name not in METRICS:
                raise self.fail(("metrics", index), f"unknown metric {name!r}.{did_you_mean(name, METRICS.names())} "
                                                    f"{choices_sentence(METRICS.names())}")
            if raw.index(name) != index:
                raise self.fail(("metrics", index), f"metric {name!r} is listed twice.")
        from evalgrid.metrics import with_requirements

        return with_requirements(raw)

    def check_executor(self, run: RunOptions) -> None:
        from evalgrid.executors import EXECUTORS

        if run.executor not in EXECUTORS:
            raise self.fail(("run", "executor"), f"unknown executor {run.executor!r}."
                                                 f"{did_you_mean(run.executor, EXECUTORS.names())} "
                                                 f"{choices_sentence(EXECUTORS.names())}")

    def check_speedups(self, run: RunOptions) -> None:
        from evalgrid.evaluation.speedups import parse_speedups, unknown_speedup

        problem = unknown_speedup(parse_speedups(run.speedups))
        if problem:
            raise self.fail(("run", "speedups"), problem)

    def component_bases(self) -> dict[str, dict[str, Any]]:
        """Per factor, each component's options after the grid's [attacks.NAME]-style overrides."""
        bases: dict[str, dict[str, Any]] = {}
        for factor_name in FACTORS:
            factor = FACTORS[factor_name]
            if not isinstance(factor, (ComponentFactor, ChainFactor)):
                continue
            section = factor.overrides_section
            bases[factor_name] = {}
            for component, overrides in self.table(section).items():
                if component not in factor.registry:
                    names = factor.registry.names()
                    raise self.fail((section, component), f"unknown {factor_name} {component!r}."
                                                          f"{did_you_mean(component, names)} {choices_sentence(names)}")
                if not isinstance(overrides, dict):
                    raise self.fail((section, component), f"expected a table of options, got {overrides!r}.")
                with self.at(section, component):
                    bases[factor_name][component] = parse_options(factor.registry[component].options, overrides)
        return bases

    def factor_values(self, bases: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
        declared = self.table("factors", required=True)
        for name in declared:
            if name not in FACTORS:
                raise self.fail(("factors", name), f"unknown factor.{did_you_mean(name, FACTORS.names())} "
                                                   f"{choices_sentence(FACTORS.names())}")
        values: dict[str, tuple[Any, ...]] = {}
        for name in FACTOR_NAMES:
            factor = FACTORS[name]
            if name not in declared:
                if factor.default is REQUIRED:
                    raise self.fail(("factors",), f"missing required factor {name!r}: list its values, "
                                                  f"e.g. {name} = [...].")
                raw_list = [factor.default]
            else:
                raw_list = declared[name]
                if not isinstance(raw_list, list):
                    hint = (f"list every value, e.g. {name} = [...]; there is no range syntax"
                            if isinstance(raw_list, dict) else f"write {name} = [{_toml_repr(raw_list)}]")
                    raise self.fail(("factors", name), f"expected a list of values, got {raw_list!r}; {hint}.")
                if not raw_list:
                    raise self.fail(("factors", name), "the list is empty: give at least one value.")
            parsed = []
            first_index: dict[Any, int] = {}  # value → its first index: duplicates in O(n), not O(n²)
            base = bases.get(name, {})
            for index, raw in enumerate(raw_list):
                try:  # as self.at(...), without a context manager per value: a factor may list 100,000s
                    value = factor.parse(raw, base)
                except GridError:
                    raise
                except (InvalidOption, UserError) as err:
                    raise self.located(("factors", name, index), err) from None
                first = _first_index(first_index, parsed, value, index)
                if first is not None:
                    raise self.fail(("factors", name, index),
                                    f"{_toml_repr(raw)} resolves to the same configuration as "
                                    f"factors.{name}[{first}] ({_toml_repr(raw_list[first])}); remove one.")
                parsed.append(value)
            values[name] = tuple(self.with_paths_resolved(factor, value) for value in parsed)
        return values

    def with_paths_resolved(self, factor: Any, value: Any) -> Any:
        """A component value whose entry has path options (a checkpoint), with those paths
        resolved once, here, against the grid file's folder (:meth:`Choice.resolved`)."""
        registry = getattr(factor, "registry", None)
        if registry is None or not isinstance(value, Choice):
            return value
        paths = {name: getattr(value.options, name) for name in getattr(registry[value.name], "path_options", ())}
        relative = {name: path for name, path in paths.items() if path and not Path(path).is_absolute()}
        if not relative:
            return value
        base = self.merged.files[-1].resolve().parent
        located = dataclasses.replace(value.options, **{name: str(base / path) for name, path in relative.items()})
        return dataclasses.replace(value, located=located)

    def zip_groups(self, varied: tuple[str, ...], values: dict[str, tuple[Any, ...]]) -> list[tuple[str, ...]]:
        raw = self.data.get("zip", [])
        if not isinstance(raw, list) or not all(isinstance(g, list) for g in raw):
            raise self.fail(("zip",), f"expected a list of lists of factor names, e.g. "
                                      f"zip = [[\"dataset\", \"batch_size\"]], got {raw!r}.")
        seen: dict[str, int] = {}
        groups = []
        for index, group in enumerate(raw):
            if len(group) < 2:
                raise self.fail(("zip", index), f"a zip group needs at least two factors, got {group!r}.")
            for name in group:
                if name not in varied:
                    raise self.fail(("zip", index), f"{name!r} is not a factor listed in [factors]."
                                                    f"{did_you_mean(name, varied)} {choices_sentence(varied)}")
                if name in seen:
                    raise self.fail(("zip", index), f"factor {name!r} is already zipped in zip[{seen[name]}].")
                seen[name] = index
            lengths = {name: len(values[name]) for name in group}
            if len(set(lengths.values())) > 1:
                detail = ", ".join(f"{n} has {k}" for n, k in lengths.items())
                raise self.fail(("zip", index), f"zipped factors must list the same number of values: {detail}.")
            groups.append(tuple(group))
        return groups

    def exclude_rules(self, varied: tuple[str, ...], bases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        raw = self.data.get("exclude", [])
        if not isinstance(raw, list) or not all(isinstance(rule, dict) for rule in raw):
            raise self.fail(("exclude",), "expected [[exclude]] tables of factor = value pairs.")
        rules = []
        for index, rule in enumerate(raw):
            if not rule:
                raise self.fail(("exclude", index), "an empty rule would exclude every cell.")
            matchers = {}
            for name, pattern in rule.items():
                if name not in varied:
                    known = "" if name in FACTORS else f" unknown factor.{did_you_mean(name, FACTORS.names())}"
                    raise self.fail(("exclude", index, name), f"{name!r} is not a factor listed in [factors].{known} "
                                                              f"{choices_sentence(varied)}")
                patterns = pattern if isinstance(pattern, list) else [pattern]
                alternatives = []
                for position, one in enumerate(patterns):
                    key = ("exclude", index, name, *([position] if isinstance(pattern, list) else []))
                    with self.at(*key):
                        alternatives.append(FACTORS[name].pattern(one, bases.get(name, {})))
                matchers[name] = alternatives
            rules.append(matchers)
        return rules

    def data_root(self, data: DataOptions) -> Path | None:
        """``[data] root`` (relative to its file), else ``$EVALGRID_DATA``, else None."""
        from evalgrid.data.root import resolve_data_root

        configured = self.relative_path(("data", "root"), data.root)
        return configured or (Path(resolved).resolve() if (resolved := resolve_data_root(None)) else None)

    def relative_path(self, key: tuple[str, str], value: str) -> Path | None:
        """A path option, relative to the file that sets it."""
        if not value:
            return None
        base = self.merged.origin(*key).parent
        return (base / Path(value).expanduser()).resolve()


def validate_grid(merged: MergedToml, max_cells: int | None = None) -> Grid:
    """The grid; with ``max_cells``, one whose factor lists give more combinations is refused
    before any cell is made."""
    return _Validator(merged, max_cells).grid()


def _key_text(key: tuple[str | int, ...]) -> str:
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _toml_repr(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_repr(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
