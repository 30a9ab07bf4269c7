"""What the checks before dispatch found, and the one message that reports it all.

A grid can fail to be ready in two ways: an input it names is not on this machine (a dataset's
files, a weights file, a checkpoint: :class:`~evalgrid.errors.MissingInput`), or a setting is
wrong (an impossible combination, a damaged file, a model too big). Every missing input is
collected, once, with the grid keys that need it, and the checks that do not need it go on; a
wrong setting ends its group of checks. ``plan --check`` and ``run`` raise the same message
(:meth:`Findings.report`), so both say the same thing about a machine without the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from evalgrid.errors import MissingInput, UserError

Result = TypeVar("Result")


@dataclass
class Findings:
    """The missing inputs (each once: its identity -> the grid keys needing it and the
    component's message), the wrong settings (full messages) and the checks skipped for want of
    a missing input, of the grid file ``source``."""

    source: Path
    missing: dict[object, tuple[list[str], str]] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    skipped: dict[str, None] = field(default_factory=dict)  # an ordered set of phrases

    def __bool__(self) -> bool:
        return bool(self.missing or self.wrong)

    def add_missing(self, key: str, error: MissingInput) -> None:
        """Record ``error`` under the grid ``key`` that needs it; a second report of the same
        file (or the same message) only adds its key."""
        identity = error.path if error.path is not None else str(error)
        keys, _ = self.missing.setdefault(identity, ([], str(error)))
        if key and key not in keys:
            keys.append(key)

    def attempt(self, key: str, check: Callable[..., Result], *args: Any) -> Result | None:
        """``check(*args)``; None, with the input recorded under ``key``, when it is missing."""
        try:
            return check(*args)
        except MissingInput as error:
            self.add_missing(key, error)
            return None

    def skip(self, checks: str) -> None:
        """Say that ``checks`` (a phrase) wait for a missing input."""
        self.skipped[checks] = None

    @contextmanager
    def group(self) -> Iterator[None]:
        """Checks that stop at their first wrong setting, recorded; later groups still run."""
        try:
            yield
        except MissingInput as error:  # one that no finer check expected: recorded all the same
            self.add_missing("", error)
        except UserError as error:
            if str(error) not in self.wrong:
                self.wrong.append(str(error))

    def report(self) -> str:
        """Every missing input and wrong setting, one per line, and what waits for the missing
        ones. A single wrong setting with nothing missing reads as it always has: its own paragraph."""
        if not self.missing and len(self.wrong) == 1:
            return self.wrong[0]
        lines = []
        if self.missing:
            count = len(self.missing)
            lines.append(f"{self.source}: {_counted(count, 'input')} missing on this machine (evalgrid never "
                         f"downloads; `run` starts no cell until {'it is' if count == 1 else 'they are'} there):")
            lines += [f"  - {_keyed(keys, message)}" for keys, message in self.missing.values()]
        if self.wrong:
            lines.append(f"{self.source}: {_counted(len(self.wrong), 'setting')} cannot run (each group of checks "
                         f"stops at its first):")
            lines += [f"  - {self._without_source(message)}" for message in self.wrong]
        if self.missing and self.skipped:
            lines.append(f"Not checked until the missing inputs are there: {'; '.join(self.skipped)}.")
        return "\n".join(lines)

    def _without_source(self, message: str) -> str:
        prefix = f"{self.source}: "
        return message[len(prefix):] if message.startswith(prefix) else message


def _keyed(keys: list[str], message: str) -> str:
    """``message`` after the grid keys that need the input (e.g. "factors.dataset, factors.prior: ...")."""
    return f"{', '.join(keys)}: {message}" if keys else message


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
