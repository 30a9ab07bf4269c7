"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

A crash leaves either the whole new file or none; stale temporaries carry the
``TMP_MARKER`` in their name so that a resumed run can sweep them away.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TMP_MARKER = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: Path, write: Callable[[Path], None], durable: bool = True) -> None:
    """Call ``write(tmp_path)`` and then move the temporary file onto ``path``. ``durable=False``
    skips the fsync, for a file rewritten every few seconds that only shows progress: a crash
    may lose its last version, never leave half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARKER}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600: give collaborators what open() would
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable)


def write_if_changed(path: Path, text: str) -> None:
    """:func:`atomic_write_text` unless ``path`` holds ``text`` already: an unchanged file keeps
    its time (DIR/cell_ids.txt's tells readers whether DIR/results.parquet was collected for
    these cells)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete leftovers of interrupted atomic writes below ``folder``; returns how many."""
    removed = 0
    if folder.exists():
        for leftover in folder.rglob(f"*{TMP_MARKER}*"):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
    return removed


def sweep_temporaries(root: Path, keep_out: Path | None = None) -> int:
    """Delete leftovers of interrupted atomic writes anywhere in ``root`` (its own files and every
    folder below it) except in the folder of ``root`` that is or holds ``keep_out``, a folder
    whose writers sweep it under their own lock (a stage cache); returns how many."""
    removed = 0
    if not root.is_dir():
        return 0
    kept = keep_out.resolve() if keep_out is not None else None
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            if kept is None or entry.resolve() not in (kept, *kept.parents):
                removed += remove_stale_temporaries(entry)
        elif TMP_MARKER in entry.name and entry.is_file():
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
