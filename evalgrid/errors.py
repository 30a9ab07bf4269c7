"""User-facing errors: one paragraph, exit code 2, never a traceback."""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input (grid file, flags, missing data or weights).

    The CLI prints ``str(error)`` as one paragraph and exits with code 2.
    """

    exit_code = 2


class MissingInput(UserError):
    """A file or folder the grid needs that is not on this machine (a dataset's files, a weights
    file, a checkpoint), as opposed to one that is there but wrong: the checks before dispatch
    collect every missing one (``path`` tells two reports of one file apart) and go on."""

    def __init__(self, message: str, path: object = None):
        super().__init__(message)
        self.path = path


class OutputFull(UserError):
    """The output directory's disk (or quota) is full, or it became read-only, while a cell's
    files were written: the run stops, since every further cell would fail the same way."""

    def __init__(self, cell_id: str, reason: str):
        super().__init__(cell_id, reason)
        self.cell_id, self.reason = cell_id, reason

    def __str__(self) -> str:
        return f"writing cell {self.cell_id}'s files failed: {self.reason}"


# errno values that mean "the storage cannot take more", not "this cell went wrong"
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def storage_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in STORAGE_FULL_ERRNOS


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """A ' Did you mean 'x'?' suffix when a close choice exists, else ''."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def choices_sentence(choices: Iterable[str]) -> str:
    names = sorted(choices)
    return "Valid choices: " + ", ".join(names) + "." if names else "There are no valid choices."


class GridError(UserError):
    """An invalid grid file: names the file, the key path and what is allowed."""

    def __init__(self, file: str, key: str, message: str, choices: Iterable[str] | None = None,
                 bad_value: object = None):
        text = f"{file}: {key}: {message}" if key else f"{file}: {message}"
        if choices is not None:
            choices = list(choices)
            if bad_value is not None:
                text += did_you_mean(bad_value, choices)
            text += " " + choices_sentence(choices)
        super().__init__(text)
        self.file, self.key = file, key
