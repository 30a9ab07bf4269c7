"""The result schema, and reading/writing/collecting result rows.

Every row is checked against one explicit Arrow schema before it is written, so
``collect`` never meets a file with a different header.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalgrid.grid.cell import FACTOR_NAMES
from evalgrid.store.atomic import atomic_write
from evalgrid.store.heal import DamagedResult, damaged_results, quarantine
from evalgrid.store.layout import OutputDir, result_id

_timestamp = pa.timestamp("us", tz="UTC")
# A factor's and a metric's column type, by the dtype their declarations give.
COLUMN_TYPES = {"int64": pa.int64(), "bool": pa.bool_(), "category": pa.string(), "float64": pa.float64()}


@functools.cache
def result_schema() -> pa.Schema:
    """The columns of a result row: identity, each factor's label (typed by the factor's dtype),
    each catalogue metric's mean over trials and, for metrics with per-sample values, the values
    per [trial][sample] (samples in the private batch's order, after matching); then the facts
    of the run."""
    from evalgrid.catalogue import METRICS
    from evalgrid.grid.factors import FACTORS

    metrics = [METRICS[name] for name in METRICS]
    return pa.schema(
        [pa.field("cell_id", pa.string(), nullable=False), pa.field("grid", pa.string())]
        + [pa.field(name, COLUMN_TYPES[FACTORS[name].dtype]) for name in FACTOR_NAMES]
        + [pa.field("config", pa.string())]
        + [pa.field(metric.name, COLUMN_TYPES[metric.column_type]) for metric in metrics]
        + [pa.field(f"{metric.name}_per_sample", pa.list_(pa.list_(pa.float64())))
           for metric in metrics if metric.per_sample]
        + RUN_FIELDS)


def metric_columns() -> tuple[str, ...]:
    from evalgrid.catalogue import METRICS

    return tuple(METRICS.names())


def per_sample_metrics() -> tuple[str, ...]:
    from evalgrid.catalogue import METRICS

    return tuple(name for name in METRICS if METRICS[name].per_sample)


RUN_FIELDS = [
    pa.field("recovered_labels", pa.list_(pa.int64())),
    pa.field("true_labels", pa.list_(pa.int64())),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error_type", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("traceback", pa.string()),
    pa.field("final_loss", pa.float64()),
    # JSON {term: [at the first step, at the returned images]}, each term weighted as in the loss
    pa.field("loss_terms", pa.string()),
    pa.field("attack_iterations", pa.int64()),
    pa.field("attack_iterations_saved", pa.int64()),  # planned − run: steps early stopping saved (0 when off)
    # planned iterations per trial over the attack preset's (evaluation/budget.py); below 0.5: under budget
    pa.field("budget_share", pa.float64()),
    pa.field("model_parameters", pa.int64()),  # p, trainable (SoK Theorem 4.3)
    pa.field("gradient_parameters", pa.int64()),  # of them, those whose gradients the attack matched
    pa.field("input_dimension", pa.int64()),  # B × D = B × C × H × W (K·B under secure aggregation)
    pa.field("local_steps", pa.int64()),  # U, the victim's local SGD steps
    pa.field("stage_round", pa.int64()),  # the FedAvg round of the attacked global model
    pa.field("prior_key", pa.string()),  # the cache key of the adversary's trained prior ("" for none or a file)
    pa.field("epsilon", pa.float64()),  # DP-SGD's ε for the victim's round (δ in the defense); NaN without
    pa.field("resumed_at_iteration", pa.list_(pa.int64())),  # attack iterations done at each resume
    pa.field("trials_stacked", pa.int64()),  # the most trials run together as lanes (1: one by one)
    pa.field("cells_packed", pa.int64()),  # cells whose attacks ran as lanes of one stacked attack (1: alone)
    pa.field("speedups", pa.string()),  # attack-loop switches, comma-separated ("" for none)
    pa.field("wall_s", pa.float64()),  # the cell's; of a pack of cells_packed n > 1, the pack's ÷ n
    pa.field("device", pa.string()),
    pa.field("host", pa.string()),
    pa.field("started_at", _timestamp),
    pa.field("finished_at", _timestamp),
    pa.field("evalgrid_version", pa.string()),
    pa.field("git_commit", pa.string()),
    pa.field("git_dirty", pa.bool_()),
    pa.field("torch_version", pa.string()),
    pa.field("torchvision_version", pa.string()),
    pa.field("python_version", pa.string()),
    pa.field("numpy_version", pa.string()),
    pa.field("lpips_version", pa.string()),  # null when lpips is not installed
    pa.field("cuda_version", pa.string()),  # the CUDA torch was built with; null for a CPU build
    pa.field("gpu_name", pa.string()),  # the cell's GPU; null on the CPU
    pa.field("command", pa.string()),  # the command line that launched the run, shell-quoted
    pa.field("plugins", pa.string()),  # installed plugin packages: "name version (git commit)", "; "-joined
]


STATUSES = ("done", "failed")
# Rows per row group of a collected results file: one group of a million rows is read by one
# thread and decoded in 700 MB chunks (3.7 s here); groups of 2^17 rows read in 0.6 s.
ROWS_PER_GROUP = 131_072


def empty_row() -> dict[str, Any]:
    """A row with every column present: metrics NaN, everything else null."""
    schema = result_schema()
    row: dict[str, Any] = {name: None for name in schema.names}
    row.update({name: float("nan") for name in (*metric_columns(), "epsilon")})
    return row


def _table(row: dict[str, Any]) -> pa.Table:
    schema = result_schema()
    missing = [n for n in schema.names if n not in row]
    extra = [n for n in row if n not in schema.names]
    if missing or extra:
        raise ValueError(f"result row does not match the schema: missing {missing}, unexpected {extra}")
    if row["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {row['status']!r}")
    return pa.Table.from_pylist([row], schema=schema)


def write_result(out: OutputDir, row: dict[str, Any]) -> Path:
    """Write one cell's row atomically: cells/ when done (and drop an old failure), failed/ otherwise."""
    table = _table(row)
    cell_id = row["cell_id"]
    target = out.done_result(cell_id) if row["status"] == "done" else out.failed_result(cell_id)
    atomic_write(target, lambda tmp: pq.write_table(table, tmp, write_page_checksum=True))
    if row["status"] == "done":
        out.failed_result(cell_id).unlink(missing_ok=True)
    return target


def read_result_file(path: Path) -> pa.Table:
    """One result file (of any size) as the result schema."""
    return _as_result_schema([read_stored(path)])


def read_stored(path: Path) -> pa.Table:
    """One result file (of any size) as stored: the result schema but for the names of list items,
    which pandas ignores (casting a million rows' lists to rename them costs ~0.4 s). The file
    is read ahead in large coalesced blocks (a collected file is compressed ~15x)."""
    return _read_stored(path, use_threads=True, pre_buffer=True)


# Opening a small Parquet file costs ~0.8 ms of CPU, mostly setting up its ~70 column readers, and
# holds the GIL: many files are read by several processes, each a contiguous share, in order.
FILES_PER_PROCESS = 1000
MAX_READ_PROCESSES = 8


class PendingRows:
    """Result files being read (by worker processes for many files) while the caller goes on;
    ``result()`` gives their rows, in the files' order, as the result schema, leaving out each file
    that fails the full check (it does not decode, lacks the result columns, or holds another
    cell's row); those are in ``damaged`` once ``result()`` returned."""

    def __init__(self, files: Iterable[Path]):
        paths = [str(path) for path in files]
        processes = min(MAX_READ_PROCESSES, os.cpu_count() or 1, len(paths) // FILES_PER_PROCESS)
        self._paths, self._pool, self._shares = paths, None, []
        self.damaged: list[DamagedResult] = []
        if processes >= 2:
            share = -(-len(paths) // processes)
            context = multiprocessing.get_context("spawn")  # the caller may hold torch's threads
            self._pool = ProcessPoolExecutor(processes, mp_context=context)
            self._shares = [self._pool.submit(_read_files, paths[i:i + share]) for i in range(0, len(paths), share)]

    def result(self) -> pa.Table:
        if self._pool is None:
            shares = [_read_files(self._paths)] if self._paths else []
        else:
            with self:
                shares = [share.result() for share in self._shares]
        self.damaged = [DamagedResult(Path(path), reason) for _, damaged in shares for path, reason in damaged]
        return _as_result_schema([table for table, _ in shares])

    def __enter__(self) -> PendingRows:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def read_rows(files: Iterable[Path]) -> pa.Table:
    """The rows of many small result files, in the given order, as the result schema."""
    return PendingRows(files).result()


def _read_files(paths: list[str]) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Each file read on this thread (for a file of one row, starting threads costs more than
    the read); every FILES_PER_PROCESS files are joined into one compact table, which frees the
    read buffers that each small table holds on to. Files that fail the full check are left
    out and returned as (path, reason)."""
    blocks, damaged = [], []
    for i in range(0, len(paths), FILES_PER_PROCESS):
        tables = []
        for path in paths[i:i + FILES_PER_PROCESS]:
            table, reason = _checked_result(Path(path))
            if reason is None:
                tables.append(table)
            else:
                damaged.append((path, reason))
        if tables:
            blocks.append(pa.concat_tables(tables).combine_chunks())
    return (pa.concat_tables(blocks) if blocks else _stored_schema().empty_table()), damaged


def _checked_result(path: Path) -> tuple[pa.Table | None, str | None]:
    """(the file's rows, None), or (None, why it cannot be trusted): it must decode as Parquet
    in the result schema and hold exactly one row, of the cell its name names."""
    try:
        table = _read_stored(path, use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as error:
        detail = str(error).strip().splitlines()
        return None, f"not a readable result file ({type(error).__name__}: {detail[0][:200] if detail else ''})"
    expected = result_id(path)
    ids = table.column("cell_id").to_pylist()
    if ids != [expected]:
        return None, (f"it holds {len(ids)} rows of cells {ids[:3]}, not the one row of cell {expected} "
                      f"(another schema, or a copy)")
    return table, None


@functools.cache
def _stored_schema() -> pa.Schema:
    """the result schema as a Parquet file gives it back (list items named "element", not "item")."""
    buffer = io.BytesIO()
    pq.write_table(result_schema().empty_table(), buffer)
    return pq.read_schema(pa.BufferReader(buffer.getvalue()))


def _read_stored(path: Path, use_threads: bool, pre_buffer: bool = False) -> pa.Table:
    """A result file with the stored schema; a file of another one (an older evalgrid's) is read
    through the result schema, a column it lacks coming back null. Without ``pre_buffer``, pages are
    read as they are decoded (for small files: no read-ahead buffers to set up)."""
    with pq.ParquetFile(path, pre_buffer=pre_buffer, page_checksum_verification=True) as file:
        table = file.read(use_threads=use_threads)
    if table.schema.equals(_stored_schema(), check_metadata=True):
        return table
    return pq.read_table(path, schema=result_schema(), page_checksum_verification=True).cast(_stored_schema())


def _as_result_schema(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables).cast(result_schema()) if tables else result_schema().empty_table()


class ResultsNote(UserWarning):
    """Something a reader of DIR left out or a writer moved aside (files skipped, stale rows);
    the command line prints these as plain lines on stderr."""


def warn_user(line: str) -> None:
    """How the Python API says what it skipped or moved: a :class:`ResultsNote` warning."""
    warnings.warn(line, ResultsNote, stacklevel=3)


def collect(out: OutputDir, order: Callable[[], list[str] | None] | None = None,
            say: Callable[[str], None] = warn_user) -> tuple[Path, int]:
    """Merge every cell's latest result into DIR/results.parquet (atomically), in the order of
    cell ids that ``order()`` gives (computed while the files are read); file order without.
    Damaged result files are moved to DIR/quarantine/, with a line to ``say`` for each; rows of
    cells not in DIR/cell_ids.txt (an earlier grid's) are left out, and ``say`` counts them."""
    for line in quarantine(out, damaged_results(out)):
        say(line)
    with PendingRows(out.result_files()) as pending:
        ids = order() if order is not None else None
        table = pending.result()
    for line in quarantine(out, pending.damaged):
        say(line)
    current = out.current_ids()
    if current is not None and table.num_rows:
        is_current = pc.is_in(table.column("cell_id"), value_set=pa.array(current, pa.string()))
        left_out = table.num_rows - pc.sum(is_current).as_py()
        if left_out:
            table = table.filter(is_current)
            say(f"left out {left_out} rows of cells that are not in {out.grid_toml} (results of an earlier grid "
                f"in the same directory; evalgrid.load({str(out.root)!r}, stale=True) returns them)")
    if ids is not None and table.num_rows:
        rank = {cell_id: i for i, cell_id in enumerate(ids)}
        keys = [rank.get(c, len(rank)) for c in table.column("cell_id").to_pylist()]
        table = table.take(sorted(range(table.num_rows), key=keys.__getitem__))
    write_results_file(table, out.results)
    return out.results, table.num_rows


def collected_is_fresh(out: OutputDir, files: Iterable[Path]) -> bool:
    """DIR/results.parquet was written after every one of ``files`` (the result files) and after
    DIR/cell_ids.txt (which ``run`` rewrites only when the grid's cells change): it holds the rows
    those files give now. A file written in the same clock tick counts as newer (a coarse clock,
    as on some network file systems, then costs a re-read, never a stale table)."""
    try:
        collected = out.results.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    for path in (out.cell_ids_file, *files):
        try:
            if path.stat().st_mtime_ns >= collected:
                return False
        except FileNotFoundError:
            continue  # moved aside or replaced since it was listed
    return out.results.is_file()


def collected_is_whole(out: OutputDir) -> bool:
    """DIR/results.parquet is fresh (:func:`collected_is_fresh`), reads back whole (its pages'
    checksums verified) and holds exactly the rows of the current cells' result files: ``run``
    then skips its collect (reading 100,000 result files again takes minutes; this file, about a
    second)."""
    files = out.result_files()
    if not collected_is_fresh(out, files):
        return False
    current = out.current_ids()
    current = None if current is None else set(current)
    expected = sorted(result_id(path) for path in files if current is None or result_id(path) in current)
    try:
        table = read_stored(out.results)
    except (pa.ArrowException, OSError, ValueError):
        return False
    return sorted(table.column("cell_id").to_pylist()) == expected


def write_results_file(table: pa.Table, path: Path) -> None:
    """A collected results file, written atomically, in row groups of ROWS_PER_GROUP."""
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, row_group_size=ROWS_PER_GROUP, write_page_checksum=True))
