"""``evalgrid.load(DIR)``: the results as one tidy pandas DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from evalgrid.cell import FACTOR_NAMES
from evalgrid.errors import UserError
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import BOOLEAN_FACTORS, INTEGER_FACTORS, RESULT_SCHEMA, read_rows


def load(directory: str | Path) -> pd.DataFrame:
    """One row per cell (done or failed): factor columns as categories in grid order (integers
    as int64, knows_local_config as bool), metrics as float64, per-sample metrics as lists of
    lists ([trial][sample]). Reads DIR/results.parquet when
    it is newer than every cell file, else the cell files directly (nothing is written)."""
    out = OutputDir(Path(directory))
    if not out.root.is_dir():
        raise UserError(f"{directory}: no such output directory.")
    files = out.result_files()
    if out.results.is_file() and all(f.stat().st_mtime <= out.results.stat().st_mtime for f in files):
        table = pq.read_table(out.results, schema=RESULT_SCHEMA)
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
            present = list(dict.fromkeys(frame[name].dropna()))
            categories = [c for c in order.get(name, []) if c in present]
            categories += [c for c in present if c not in categories]
            frame[name] = pd.Categorical(frame[name], categories=categories)
    return frame


def _grid_order(out: OutputDir) -> dict[str, list[str]]:
    """Factor labels in the order the grid lists them (for tables and plots)."""
    if not out.grid_toml.is_file():
        return {}
    from evalgrid.grid import load_grid

    try:
        grid = load_grid(out.grid_toml)
    except UserError:  # the grid as run no longer validates (e.g. a registry entry was renamed)
        return {}
    return {name: [str(v) for v in values] for name, values in grid.values.items()}
