"""Damaged result files: found, moved aside to DIR/quarantine/, and their cells run again.

A result file is trusted only once it passes two checks. The cheap one, run before every run
on every file (100,000 files in about 1.2 s: one open and two small reads each), looks at
what a kill or a full disk leaves and what a stray copy looks like: a name that is not a cell
id, something that is not a regular file, and a Parquet file without its magic bytes at both
ends or with a footer longer than the file. The full one happens when the rows are read
(:func:`evalgrid.store.results.read_rows`): the file must decode, carry the result columns, and
name the cell its file name names. Writers (``run``, ``collect``) move a file that fails either
check to DIR/quarantine/ and say so; readers (``load``, ``status``, ``table``, ``report``) skip
it and say so, and change nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evalgrid.grid.cell import CELL_ID_LENGTH
from evalgrid.store.layout import RESULT_SUFFIX, OutputDir, is_cell_id

PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class DamagedResult:
    """A result file that cannot be trusted, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def damaged_results(out: OutputDir) -> list[DamagedResult]:
    """The cheap check (see the module docstring) of every entry of DIR/cells/ and DIR/failed/."""
    damaged = []
    for folder in (out.cells, out.failed):
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") or not entry.name.endswith(RESULT_SUFFIX):
                continue
            reason = _cheap_check(entry)
            if reason:
                damaged.append(DamagedResult(Path(entry.path), reason))
    return damaged


def _cheap_check(entry: os.DirEntry) -> str | None:
    if not is_cell_id(entry.name[: -len(RESULT_SUFFIX)]):
        return f"its name is not a cell id ({CELL_ID_LENGTH} hex digits){RESULT_SUFFIX}"
    if entry.is_symlink() or not entry.is_file():
        return "not a regular file"
    try:  # os-level calls: a Python file object costs more than the reads (100,000 files: 0.8 s against 2.3 s)
        descriptor = os.open(entry.path, os.O_RDONLY)
        try:
            head = os.read(descriptor, 4)
            size = os.lseek(descriptor, 0, os.SEEK_END)
            tail = os.pread(descriptor, 8, size - 8) if size >= 12 else b""
        finally:
            os.close(descriptor)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if size < 12:
        return f"{size} bytes, too short for a Parquet file"
    footer = int.from_bytes(tail[:4], "little")
    if head != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC:
        return "not a Parquet file (no PAR1 at its start and end): cut short or overwritten"
    if footer > size - 12:
        return f"its footer claims {footer} bytes of a {size}-byte file"
    return None


def quarantine(out: OutputDir, damaged: list[DamagedResult]) -> list[str]:
    """Move each damaged file (or directory) to DIR/quarantine/ under a name that keeps its
    folder and never overwrites; returns one line per file for the user."""
    lines = []
    for item in damaged:
        out.quarantine.mkdir(parents=True, exist_ok=True)
        target = _free_name(out.quarantine / f"{item.path.parent.name}-{item.path.name}")
        try:
            os.replace(item.path, target)
        except FileNotFoundError:
            continue  # another process moved or replaced it first
        lines.append(f"moved {item.path} to {target}: {item.reason}; its cell will run again")
    return lines


def _free_name(path: Path) -> Path:
    candidate, number = path, 1
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.name}.{number}")
        number += 1
    return candidate
