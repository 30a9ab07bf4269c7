"""The output directory's layout: one place that knows every path."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from evalgrid.grid.cell import CELL_ID_LENGTH

RESULT_SUFFIX = ".parquet"
CURVE_FILE = "curve.csv"  # a cell's convergence record, among its artifacts (evalgrid/store/curves.py)


@dataclass(frozen=True)
class OutputDir:
    """DIR/grid.toml, DIR/cell_ids.txt (its cells' ids), DIR/cells/<id>.parquet (done),
    DIR/failed/<id>.parquet (last failure), DIR/artifacts/<id>/ (reconstruction.png,
    reconstruction.npz, curve.csv), DIR/logs/<id>.log,
    DIR/checkpoints/<id>.pt (a stopped cell's progress), DIR/running/<id>.json (a running cell's
    progress: evalgrid.store.cell_progress), DIR/slurm/ (what was submitted:
    evalgrid.executors.slurm), DIR/results.parquet (made by ``collect``),
    DIR/stages/ (trained stage models, unless the grid names a shared cache), DIR/quarantine/
    (damaged result files moved aside: evalgrid.store.heal)."""

    root: Path

    @property
    def grid_toml(self) -> Path:
        return self.root / "grid.toml"

    @property
    def cell_ids_file(self) -> Path:
        """The ids of grid.toml's cells, one per line in grid order, written with it by ``run``:
        readers tell current rows from stale ones without expanding the grid (or importing torch)."""
        return self.root / "cell_ids.txt"

    def current_ids(self) -> list[str] | None:
        """The ids of grid.toml's cells in grid order (:meth:`cell_ids`); None when DIR has no
        grid.toml, or one that cannot be expanded (then every row counts as current)."""
        from evalgrid.errors import UserError

        listed = self.listed_cell_ids()
        if listed is not None or not self.grid_toml.is_file():
            return listed
        try:
            return self._expanded_ids()
        except UserError:
            return None

    def cell_ids(self) -> list[str]:
        """The ids of grid.toml's cells in grid order: from :attr:`cell_ids_file`, or, in a
        directory without a valid one, by expanding grid.toml (which reads the catalogue, not torch)."""
        listed = self.listed_cell_ids()
        return listed if listed is not None else self._expanded_ids()

    def _expanded_ids(self) -> list[str]:
        from evalgrid.grid import load_grid

        return [cell.cell_id for cell in load_grid(self.grid_toml, max_cells=None).cells]

    def grid_name(self) -> str:
        """The name in grid.toml, read without validating the grid."""
        from evalgrid.grid.toml_io import read_grid_toml

        name = read_grid_toml(self.grid_toml).data.get("name")
        return name if isinstance(name, str) else "?"

    def listed_cell_ids(self) -> list[str] | None:
        """The ids in :attr:`cell_ids_file`, in grid order; None when DIR has none (a directory
        from before it) or it is not a list of cell ids (then readers expand grid.toml instead)."""
        try:
            text = self.cell_ids_file.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return text.split() if _CELL_ID_LINES.fullmatch(text) else None  # one id per line; a grid has cells

    @property
    def cells(self) -> Path:
        return self.root / "cells"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def artifacts_root(self) -> Path:
        return self.root / "artifacts"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def running(self) -> Path:
        return self.root / "running"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def results(self) -> Path:
        return self.root / "results.parquet"

    @property
    def lock(self) -> Path:
        return self.root / ".evalgrid.lock"

    @property
    def slurm(self) -> Path:
        return self.root / "slurm"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def done_result(self, cell_id: str) -> Path:
        return self.cells / f"{cell_id}{RESULT_SUFFIX}"

    def failed_result(self, cell_id: str) -> Path:
        return self.failed / f"{cell_id}{RESULT_SUFFIX}"

    def artifacts(self, cell_id: str) -> Path:
        return self.artifacts_root / cell_id

    def curve(self, cell_id: str) -> Path:
        """A finished cell's convergence record (evalgrid.store.curves), when it was recorded."""
        return self.artifacts(cell_id) / CURVE_FILE

    def checkpoint(self, cell_id: str) -> Path:
        """A stopped cell's attack progress (evalgrid.evaluation.checkpoint), removed once its result is written."""
        return self.checkpoints / f"{cell_id}.pt"

    def cell_progress(self, cell_id: str) -> Path:
        """A running cell's trial, iteration and loss (evalgrid.store.cell_progress), removed when it ends."""
        return self.running / f"{cell_id}.json"

    def log(self, cell_id: str) -> Path:
        return self.logs / f"{cell_id}.log"

    def done_ids(self) -> set[str]:
        """Ids of cells with a result: one directory listing, no file is opened."""
        return _ids_in(self.cells)

    def failed_ids(self) -> set[str]:
        return _ids_in(self.failed) - self.done_ids()

    def result_files(self) -> list[Path]:
        """Every cell's latest result: done cells, then failures of cells not done since."""
        done = self.done_ids()
        files = [self.done_result(i) for i in sorted(done)]
        files += [self.failed_result(i) for i in sorted(_ids_in(self.failed) - done)]
        return files


def is_cell_id(text: str) -> bool:
    return _CELL_ID.fullmatch(text) is not None


_CELL_ID = re.compile(f"[0-9a-f]{{{CELL_ID_LENGTH}}}")
_CELL_ID_LINES = re.compile(f"(?:[0-9a-f]{{{CELL_ID_LENGTH}}}\n)+")


def result_id(path: Path) -> str:
    """The cell id a result file's name names."""
    return path.name[: -len(RESULT_SUFFIX)]


def _ids_in(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {name[: -len(RESULT_SUFFIX)] for name in os.listdir(folder)
            if name.endswith(RESULT_SUFFIX) and not name.startswith(".")}
