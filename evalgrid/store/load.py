"""``evalgrid.load(DIR)``: the results as one tidy pandas DataFrame; :func:`load_curves`: the
cells' convergence records as another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalgrid.grid.cell import FACTOR_NAMES
from evalgrid.errors import UserError
from evalgrid.store.curves import CurveUnreadable, curve_metrics, read_curve
from evalgrid.store.layout import OutputDir, is_cell_id, result_id
from evalgrid.grid.factors import FACTORS, REQUIRED
from evalgrid.store.results import PendingRows, collected_is_fresh, read_stored, warn_user


def load(directory: str | Path, stale: bool = False) -> pd.DataFrame:
    """One row per cell (done or failed) of DIR's current grid: factor columns as categories in
    grid order (integers as int64, knows_local_config as bool), metrics as float64, per-sample
    metrics as lists of lists ([trial][sample]).

    Rows of cells no longer in DIR/grid.toml (left by an earlier grid: another attack option,
    say, under the same labels; told by DIR/cell_ids.txt, which ``run`` writes) are left out,
    with a :class:`ResultsNote` warning that counts them; ``stale=True`` returns them too, with
    a bool column ``stale`` that marks them. A result file that cannot be read or names another
    cell is skipped with a warning naming it (``evalgrid run`` moves it aside and runs its cell
    again). Reads DIR/results.parquet when it
    is newer than every cell file and readable, else the cell files (nothing is written)."""
    out = OutputDir(Path(directory))
    if not out.root.is_dir():
        raise UserError(f"{directory}: no such output directory.")
    current = out.current_ids()
    files = out.result_files()
    table = None if stale else _collected(out, files)
    if table is None:
        pending = PendingRows(files)
        table = pending.result()
        for item in pending.damaged:
            warn_user(f"skipped {item}; `evalgrid run` on this directory moves it to "
                      f"{out.quarantine} and runs its cell again")
    current = None if current is None else pa.array(current, pa.string())
    is_stale = (np.zeros(table.num_rows, dtype=bool) if current is None else  # hashed in Arrow (pandas' isin on
                ~pc.is_in(table.column("cell_id"), value_set=current).to_numpy(zero_copy_only=False))  # strings loops)
    frame = table.to_pandas()
    order = _grid_order(out)
    for name in FACTOR_NAMES:
        dtype = FACTORS[name].dtype  # the factor's declaration says how its labels are read
        if dtype == "category":
            column = table.column(name)
            if column.null_count and FACTORS[name].default is not REQUIRED:  # rows from before the factor existed
                column = pc.fill_null(column, str(FACTORS[name].label(FACTORS[name].default)))
            frame[name] = _categorical(column, order.get(name, []))
        else:
            frame[name] = frame[name].astype(dtype)
    return _current_or_marked(frame, is_stale, current, stale, out, files)


def load_curves(directory: str | Path) -> pd.DataFrame:
    """Every finished cell's convergence record (DIR/artifacts/<cell>/curve.csv, see
    :mod:`evalgrid.store.curves`) in one DataFrame: ``cell_id`` (join it with :func:`load`'s
    rows for the factors), ``trial``, ``iteration``, ``loss``, then each curve metric (``psnr``;
    NaN where the cell does not measure it), cells in grid order, each sorted by trial and
    iteration.

    Cells with no curve (run with ``[run] curve_points = 0``, or before curves were recorded)
    are absent; cells no longer in DIR/grid.toml are left out, as :func:`load` leaves out their
    rows. A curve.csv that is damaged (or not one) is skipped with a warning naming it and why."""
    out = OutputDir(Path(directory))
    if not out.root.is_dir():
        raise UserError(f"{directory}: no such output directory.")
    done = {cell_id for cell_id in out.done_ids() if is_cell_id(cell_id)}
    current = out.current_ids()
    cells = sorted(done) if current is None else [cell_id for cell_id in current if cell_id in done]
    frames = []
    for cell_id in cells:
        path = out.curve(cell_id)
        if not path.exists() and not path.is_symlink():
            continue
        try:
            curve = read_curve(path)
        except CurveUnreadable as damaged:
            warn_user(f"skipped {path}: {damaged}; its cell's other results are unaffected")
            continue
        frames.append(curve.sort_values(["trial", "iteration"], kind="stable").assign(cell_id=cell_id))
    empty = {"cell_id": pd.Series(dtype=str), "trial": pd.Series(dtype="int64"),
             "iteration": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64"),
             **{metric: pd.Series(dtype="float64") for metric in curve_metrics()}}
    if not frames:
        return pd.DataFrame(empty)
    joined = pd.concat(frames, ignore_index=True).reindex(columns=list(empty))  # a metric a file lacks: NaN
    return joined.astype({name: series.dtype for name, series in empty.items()})


def _collected(out: OutputDir, files: list[Path]) -> pa.Table | None:
    """DIR/results.parquet when it is newer than every result file and DIR/cell_ids.txt and can
    be read; None (read the cells) otherwise, with a warning when it is damaged."""
    if not collected_is_fresh(out, files):
        return None
    try:
        return read_stored(out.results)
    except (pa.ArrowException, OSError, ValueError) as error:
        warn_user(f"{out.results} cannot be read ({type(error).__name__}); reading the cell files instead "
                  f"(`evalgrid collect {out.root}` writes it anew)")
        return None


def _current_or_marked(frame: pd.DataFrame, is_stale: np.ndarray, current: pa.Array | None, stale: bool,
                       out: OutputDir, files: list[Path]) -> pd.DataFrame:
    """The current rows, or (``stale``) every row with the column ``stale``; the note counts the
    stale result ``files`` (a collected results.parquet holds none). Without ``current`` (a DIR
    without a grid, or one that cannot be expanded) every row counts as current."""
    if stale:
        return frame.assign(stale=is_stale)
    left_out = 0
    if current is not None and files:
        ids = pa.array([result_id(path) for path in files], pa.string())
        left_out = len(files) - pc.sum(pc.is_in(ids, value_set=current)).as_py()
    if left_out:
        warn_user(f"left out {left_out} rows of cells that are not in {out.grid_toml} (results of an earlier grid "
                  f"in the same directory); evalgrid.load({str(out.root)!r}, stale=True) returns them, marked in "
                  f"column 'stale'")
    if not is_stale.any():
        return frame  # no copy: a million rows with per-sample lists take seconds to copy
    return frame.loc[~is_stale].reset_index(drop=True)


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
