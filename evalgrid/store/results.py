"""The result schema, and reading/writing/collecting result rows.

Every row is checked against one explicit Arrow schema before it is written, so
``collect`` never meets a file with a different header.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from evalgrid.cell import FACTOR_NAMES
from evalgrid.store.atomic import atomic_write
from evalgrid.store.layout import OutputDir

# Metric columns: the mean over trials as float64 and, for image metrics, the values per
# [trial][sample] (samples in the private batch's order, after matching).
METRIC_COLUMNS = ("psnr", "ssim", "lpips", "label_acc", "brr", "wsrr", "igsa", "accuracy", "defended_accuracy")
PER_SAMPLE_METRICS = ("psnr", "ssim", "lpips")
INTEGER_FACTORS = ("resolution", "batch_size", "trials", "seed")
BOOLEAN_FACTORS = ("knows_local_config",)


def _factor_type(name: str) -> pa.DataType:
    return pa.int64() if name in INTEGER_FACTORS else pa.bool_() if name in BOOLEAN_FACTORS else pa.string()


_timestamp = pa.timestamp("us", tz="UTC")
RESULT_SCHEMA = pa.schema(
    [pa.field("cell_id", pa.string(), nullable=False), pa.field("grid", pa.string())]
    + [pa.field(name, _factor_type(name)) for name in FACTOR_NAMES]
    + [pa.field("config", pa.string())]
    + [pa.field(name, pa.float64()) for name in METRIC_COLUMNS]
    + [pa.field(f"{name}_per_sample", pa.list_(pa.list_(pa.float64()))) for name in PER_SAMPLE_METRICS]
    + [
        pa.field("recovered_labels", pa.list_(pa.int64())),
        pa.field("true_labels", pa.list_(pa.int64())),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("traceback", pa.string()),
        pa.field("final_loss", pa.float64()),
        pa.field("attack_iterations", pa.int64()),
        pa.field("attack_iterations_saved", pa.int64()),  # planned − run: steps early stopping saved (0 when off)
        pa.field("model_parameters", pa.int64()),  # p, trainable (SoK Theorem 4.3)
        pa.field("gradient_parameters", pa.int64()),  # of them, those whose gradients the attack matched
        pa.field("input_dimension", pa.int64()),  # B × D = B × C × H × W (K·B under secure aggregation)
        pa.field("local_steps", pa.int64()),  # U, the victim's local SGD steps
        pa.field("stage_round", pa.int64()),  # the FedAvg round of the attacked global model
        pa.field("epsilon", pa.float64()),  # DP-SGD's ε for the victim's round (δ in the defense); NaN without
        pa.field("resumed_at_iteration", pa.list_(pa.int64())),  # attack iterations done at each resume
        pa.field("trials_stacked", pa.int64()),  # the most trials run together as lanes (1: one by one)
        pa.field("speedups", pa.string()),  # attack-loop switches, comma-separated ("" for none)
        pa.field("wall_s", pa.float64()),
        pa.field("device", pa.string()),
        pa.field("host", pa.string()),
        pa.field("started_at", _timestamp),
        pa.field("finished_at", _timestamp),
        pa.field("evalgrid_version", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("git_dirty", pa.bool_()),
        pa.field("torch_version", pa.string()),
        pa.field("torchvision_version", pa.string()),
    ]
)
STATUSES = ("done", "failed")


def empty_row() -> dict[str, Any]:
    """A row with every column present: metrics NaN, everything else null."""
    row: dict[str, Any] = {name: None for name in RESULT_SCHEMA.names}
    row.update({name: float("nan") for name in (*METRIC_COLUMNS, "epsilon")})
    return row


def _table(row: dict[str, Any]) -> pa.Table:
    missing = [n for n in RESULT_SCHEMA.names if n not in row]
    extra = [n for n in row if n not in RESULT_SCHEMA.names]
    if missing or extra:
        raise ValueError(f"result row does not match the schema: missing {missing}, unexpected {extra}")
    if row["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {row['status']!r}")
    return pa.Table.from_pylist([row], schema=RESULT_SCHEMA)


def write_result(out: OutputDir, row: dict[str, Any]) -> Path:
    """Write one cell's row atomically: cells/ when done (and drop an old failure), failed/ otherwise."""
    table = _table(row)
    cell_id = row["cell_id"]
    target = out.done_result(cell_id) if row["status"] == "done" else out.failed_result(cell_id)
    atomic_write(target, lambda tmp: pq.write_table(table, tmp))
    if row["status"] == "done":
        out.failed_result(cell_id).unlink(missing_ok=True)
    return target


def read_result_file(path: Path) -> pa.Table:
    """One result file (of any size) as RESULT_SCHEMA."""
    return _as_result_schema([_read_stored(path, use_threads=True)])


def read_rows(files: Iterable[Path], files_per_batch: int = 1000) -> pa.Table:
    """The rows of many small result files, in order, as RESULT_SCHEMA. Each file is read on this
    thread (for a file of one row, starting threads costs more than the read); every
    ``files_per_batch`` files are joined into one compact table, which frees the read buffers
    that each small table holds on to, and the schema is applied once to them all."""
    batches: list[pa.Table] = []
    remaining = iter(files)
    while batch := list(itertools.islice(remaining, files_per_batch)):
        batches.append(pa.concat_tables([_read_stored(path, use_threads=False) for path in batch]).combine_chunks())
    return _as_result_schema(batches)


@functools.cache
def _stored_schema() -> pa.Schema:
    """RESULT_SCHEMA as a Parquet file gives it back (list items named "element", not "item")."""
    buffer = io.BytesIO()
    pq.write_table(RESULT_SCHEMA.empty_table(), buffer)
    return pq.read_schema(pa.BufferReader(buffer.getvalue()))


def _read_stored(path: Path, use_threads: bool) -> pa.Table:
    """A result file with the stored schema; a file of another one (an older evalgrid's) is read
    through RESULT_SCHEMA, a column it lacks coming back null. Pages are read as they are decoded
    (no pre-buffering): a million rows' configs are then not held twice."""
    with pq.ParquetFile(path, pre_buffer=False) as file:
        table = file.read(use_threads=use_threads)
    if table.schema.equals(_stored_schema(), check_metadata=True):
        return table
    return pq.read_table(path, schema=RESULT_SCHEMA).cast(_stored_schema())


def _as_result_schema(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables).cast(RESULT_SCHEMA) if tables else RESULT_SCHEMA.empty_table()


def collect(out: OutputDir, order: list[str] | None = None) -> tuple[Path, int]:
    """Merge every cell's latest result into DIR/results.parquet (atomically), in ``order`` of cell ids."""
    table = read_rows(out.result_files())
    if order is not None and table.num_rows:
        rank = {cell_id: i for i, cell_id in enumerate(order)}
        keys = [rank.get(c, len(rank)) for c in table.column("cell_id").to_pylist()]
        table = table.take(sorted(range(table.num_rows), key=keys.__getitem__))
    atomic_write(out.results, lambda tmp: pq.write_table(table, tmp))
    return out.results, table.num_rows
