"""What a report reads from an output directory: the grid (or what is readable of it), the
results of its cells in grid order, and how far the run got."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalgrid.grid.cell import FACTOR_NAMES
from evalgrid.errors import UserError
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import metric_columns

Level = str | int | bool  # a factor value as the results hold it: a label, or a plain int/bool


@dataclass(frozen=True)
class CellCounts:
    """Cells of the grid by state; ``not_run`` is None when the grid cannot be expanded."""

    done: int
    failed: int
    not_run: int | None
    elsewhere: int  # results of cells that are not (or no longer) in the grid


@dataclass(frozen=True)
class RunView:
    """One output directory as the report sees it."""

    root: Path
    name: str
    description: str
    levels: dict[str, tuple[Level, ...]]  # every factor's levels in grid order (results' order without a grid)
    results: pd.DataFrame  # one row per cell of the grid (every row without a grid), in grid order
    progress: CellCounts
    grid_problem: str = ""  # why grid.toml could not be read or validated; "" when it could
    raw_factors: str = ""  # the [factors] table as written, shown when the grid does not validate
    planned: pd.DataFrame | None = None  # every grid cell's factor labels; None without a readable grid

    @property
    def varied(self) -> tuple[str, ...]:
        """Factors with more than one level, seed included."""
        return tuple(name for name, levels in self.levels.items() if len(levels) > 1)

    @property
    def compared(self) -> tuple[str, ...]:
        """The varied factors a plot can put on an axis: all but seed."""
        return tuple(name for name in self.varied if name != "seed")

    @property
    def done(self) -> pd.DataFrame:
        return self.results[self.results["status"] == "done"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.results[self.results["status"] == "failed"]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric columns with at least one value among the done cells."""
        done = self.done
        return tuple(name for name in metric_columns() if name in done and done[name].notna().any())

    @property
    def image_metrics(self) -> tuple[str, ...]:
        """The measured metrics that score each reconstructed image against its original (PSNR,
        SSIM, LPIPS: how much leaked), in catalogue order."""
        from evalgrid.catalogue import METRICS

        return tuple(name for name in self.metrics
                     if METRICS[name].metric_kind == "reconstruction" and METRICS[name].per_sample)

    @property
    def utility_metrics(self) -> tuple[str, ...]:
        """The measured utility metrics, those of a federation trained with the cell's defense
        (defended accuracy) first: that is the utility a defense trades privacy for."""
        from evalgrid.catalogue import METRICS

        return tuple(sorted((name for name in self.metrics if METRICS[name].utility),
                            key=lambda name: not METRICS[name].needs_defended_training))


def read_run(root: Path) -> RunView:
    """Read DIR; a missing DIR, or one with neither grid.toml nor results, is a UserError."""
    out = OutputDir(Path(root))
    if not out.root.is_dir():
        raise UserError(f"{root}: no such output directory; make one with: evalgrid run GRID --out {root}")
    if not out.grid_toml.is_file() and not (out.done_ids() or out.failed_ids()):
        raise UserError(f"{root}: not an evalgrid output directory (no grid.toml and no cell results); "
                        f"make one with: evalgrid run GRID --out {root}")
    from evalgrid.store.load import load

    frame = load(out.root, stale=True).drop(columns="stale")  # the view counts the stale rows itself
    try:
        return _with_grid(out, frame)
    except UserError as error:
        return _without_grid(out, frame, str(error))


def _with_grid(out: OutputDir, frame: pd.DataFrame) -> RunView:
    from evalgrid.grid import load_grid

    if not out.grid_toml.is_file():
        raise UserError(f"{out.grid_toml}: no such file.")
    grid = load_grid(out.grid_toml, max_cells=None)
    order = [cell.cell_id for cell in grid.cells]
    rank = {cell_id: i for i, cell_id in enumerate(order)}
    inside = frame["cell_id"].isin(rank)
    results = frame[inside].sort_values("cell_id", key=lambda ids: ids.map(rank), kind="stable")
    done = int((results["status"] == "done").sum())
    failed = int((results["status"] == "failed").sum())
    levels = {name: tuple(_level(v) for v in grid.values[name]) for name in FACTOR_NAMES}
    planned = pd.DataFrame([cell.factor_labels() for cell in grid.cells], columns=list(FACTOR_NAMES))
    return RunView(out.root, grid.name, grid.description, levels, results.reset_index(drop=True),
                   CellCounts(done, failed, len(order) - done - failed, int((~inside).sum())), planned=planned)


def _without_grid(out: OutputDir, frame: pd.DataFrame, problem: str) -> RunView:
    raw = _raw_toml(out.grid_toml)
    names = frame["grid"].dropna().unique()
    name = raw.get("name") if isinstance(raw.get("name"), str) else names[0] if len(names) else out.root.name
    description = raw.get("description") if isinstance(raw.get("description"), str) else ""
    levels = {column: _present_levels(frame[column]) for column in FACTOR_NAMES}
    done = int((frame["status"] == "done").sum())
    failed = int((frame["status"] == "failed").sum())
    return RunView(out.root, name, description, levels, frame, CellCounts(done, failed, None, 0),
                   grid_problem=problem, raw_factors=_toml_text(raw.get("factors")))


def _level(value: Any) -> Level:
    """A grid value as its results column holds it: components by their label."""
    return value if isinstance(value, (bool, int)) else str(value)


def _present_levels(column: pd.Series) -> tuple[Level, ...]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna())
        return tuple(c for c in column.cat.categories if c in present)
    return tuple(sorted(column.dropna().unique().tolist()))


def _raw_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _toml_text(factors: Any) -> str:
    if not isinstance(factors, dict):
        return ""
    import tomli_w

    try:
        return tomli_w.dumps({"factors": factors})
    except (TypeError, ValueError):
        return repr(factors)
