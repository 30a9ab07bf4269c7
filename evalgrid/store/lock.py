"""The exclusive lock that lets one process train a cached model (a stage model, a prior) while
the others that need it wait and then read its files."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalgrid.errors import UserError

LOCK_NAME = ".lock"


@contextmanager
def exclusive(folder: Path) -> Iterator[float]:
    """Hold an exclusive flock on ``folder/.lock`` (made with the folder); yields the seconds
    spent waiting. The kernel drops the lock when its holder dies, so a killed training blocks
    nobody. On NFS, Linux emulates ``flock`` with byte-range locks, which hold across machines;
    a filesystem without locks fails with an error that says so."""
    folder.mkdir(parents=True, exist_ok=True)
    asked = time.monotonic()
    with open(folder / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            raise UserError(f"cannot lock {folder / LOCK_NAME} ({error.strerror}): the stage cache must be on a "
                            f"filesystem with file locks (on Lustre, mounted with -o flock); point [run] "
                            f"stage_cache at one.") from None
        waited = time.monotonic() - asked
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
