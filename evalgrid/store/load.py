"""``evalgrid.load(DIR)``: the results as one tidy pandas DataFrame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalgrid.cell import FACTOR_NAMES
from evalgrid.errors import UserError
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import BOOLEAN_FACTORS, INTEGER_FACTORS, read_rows, read_stored


def load(directory: str | Path) -> pd.DataFrame:
    """One row per cell (done or failed): factor columns as categories in grid order (integers
    as int64, knows_local_config as bool), metrics as float64, per-sample metrics as lists of
    lists ([trial][sample]). Reads DIR/results.parquet when
    it is newer than every cell file, else the cell files directly (nothing is written)."""
    out = OutputDir(Path(directory))
    if not out.root.is_dir():
        raise UserError(f"{directory}: no such output directory.")
    files = out.result_files()
    collected = out.results.stat().st_mtime if out.results.is_file() else None
    if collected is not None and all(f.stat().st_mtime <= collected for f in files):
        table = read_stored(out.results)
    else:
        table = read_rows(files)
    frame = table.to_pandas()
    order = _grid_order(out)
    for name in FACTOR_NAMES:
        if name in INTEGER_FACTORS:
            frame[name] = frame[name].astype("int64")
        elif name in BOOLEAN_FACTORS:
            frame[name] = frame[name].astype("bool")
        else:
            frame[name] = _categorical(table.column(name), order.get(name, []))
    return frame


def _categorical(column: pa.ChunkedArray, order: list[str]) -> pd.Categorical:
    """The labels as categories: those the grid lists in its order, then the others in order of
    appearance. Computed in Arrow, not row by row."""
    present = dict.fromkeys(pc.unique(column).drop_null().to_pylist())  # in order of appearance
    categories = list(dict.fromkeys([*(label for label in order if label in present), *present]))
    codes = pc.fill_null(pc.index_in(column, value_set=pa.array(categories, pa.string())), -1)
    return pd.Categorical.from_codes(np.asarray(codes.to_numpy(), dtype=np.int64), categories=categories)


def _grid_order(out: OutputDir) -> dict[str, list[str]]:
    """Factor labels in the order the grid lists them (for tables and plots)."""
    if not out.grid_toml.is_file():
        return {}
    from evalgrid.grid.order import factor_order

    return factor_order(out.grid_toml)
