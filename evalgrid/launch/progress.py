"""RunProgress of a run: a bar on a terminal, one line per finished cell otherwise (logs, CI).

Both also look inside the running cells, from their progress files (trial, iteration, the
attack's loss: evalgrid/store/cell_progress.py): the bar shows the longest-running cell and how
many more run, refreshed about every second; off a terminal, each cell that has run for
``QUIET_S`` gets a line at most every ``LOG_INTERVAL_S`` (short cells add nothing to a log).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the launcher's progress line imports no torch
    from evalgrid.evaluation.context import CellSummary
    from evalgrid.store.cell_progress import CellProgress

BAR_WIDTH = 24
QUIET_S = 5.0  # off a terminal, a running cell gets its first line after this long
LOG_INTERVAL_S = 30.0  # and then at most one line this often


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def running_suffix(cells: Sequence[CellProgress], ellipsis: str = "…", count_more: bool = True) -> str:
    """The bar's view of the running cells: the first (the longest-running), its id shortened,
    and how many more (``evalgrid status DIR`` lists them all, with their whole ids)."""
    if not cells:
        return ""
    more = f" (+{len(cells) - 1} more)" if len(cells) > 1 and count_more else ""
    return f" | {cells[0].cell_id[:6]}{ellipsis} {cells[0].describe(digits=2)}{more}"


def running_line(cell: CellProgress) -> str:
    """A log's line for one running cell."""
    return f"  running {cell.cell_id}: {cell.describe()}"


class RunningLog:
    """Off a terminal: which running cells get a line now. A cell does once it has been seen
    running for ``QUIET_S``, then at most every ``LOG_INTERVAL_S``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.first_seen: dict[str, float] = {}
        self.last_line: dict[str, float] = {}

    def due(self, cells: Sequence[CellProgress]) -> list[CellProgress]:
        now = self.clock()
        running = {cell.cell_id for cell in cells}
        for ended in set(self.first_seen) - running:
            self.first_seen.pop(ended)
            self.last_line.pop(ended, None)
        due = []
        for cell in cells:
            seen = self.first_seen.setdefault(cell.cell_id, now)
            if now - seen >= QUIET_S and now - self.last_line.get(cell.cell_id, -math.inf) >= LOG_INTERVAL_S:
                self.last_line[cell.cell_id] = now
                due.append(cell)
        return due


class RunProgress:
    """The progress of a local run: :meth:`update` for each finished cell (the launcher's thread),
    :meth:`show_running` with the running cells' progress (the executor's tick, any one thread)."""

    def __init__(self, total: int, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.clock = clock
        self.started = clock()
        self.running: list[CellProgress] = []
        self.running_log = RunningLog(clock)
        self.lock = threading.Lock()  # the debug executor ticks from a helper thread

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def eta_s(self) -> float:
        finished = self.done + self.failed
        return self.elapsed_s() / finished * self.remaining if finished else math.inf

    def counts(self, short: bool = False) -> str:
        eta = f"ETA {format_duration(self.eta_s()) if self.remaining else '0s'}"
        if short:  # a narrow terminal
            failed = f"{self.failed} failed, " if self.failed else ""
            return f"{self.done} done, {failed}{self.remaining} left, {eta}"
        return f"{self.done} done, {self.failed} failed, {self.remaining} remaining, {eta}"

    def update(self, summary: CellSummary) -> None:
        with self.lock:
            if summary.status == "done":
                self.done += 1
            else:
                self.failed += 1
            self.running = [cell for cell in self.running if cell.cell_id != summary.cell_id]
            if self.interactive:
                self._draw()
            else:
                detail = f"psnr {summary.psnr:.2f}" if summary.status == "done" else summary.error
                self.stream.write(f"[{self.done + self.failed}/{self.total}] {summary.cell_id} {summary.status} "
                                  f"({summary.wall_s:.1f}s) {detail} | {self.counts()}\n")
            self.stream.flush()

    def show_running(self, cells: Sequence[CellProgress]) -> None:
        """The running cells' progress, the longest-running first (evalgrid/store/cell_progress.py)."""
        with self.lock:
            self.running = list(cells)
            if self.interactive:
                self._draw()
            else:
                for cell in self.running_log.due(self.running):
                    self.stream.write(running_line(cell) + "\n")
            self.stream.flush()

    def _draw(self) -> None:
        self.stream.write(f"\r{self._line(terminal_columns(self.stream) - 1)}\033[K")

    def _line(self, width: int) -> str:
        """The bar line in ``width`` characters (a wrapped line could not be redrawn): on a narrow
        terminal a shorter bar, then shorter counts, then no count of the other running cells,
        then cut at the end."""
        ellipsis = ellipsis_for(self.stream)
        for bar_width, short, count_more in ((BAR_WIDTH, False, True), (8, False, True), (8, True, True),
                                             (8, True, False)):
            filled = round(bar_width * (self.done + self.failed) / max(self.total, 1))
            line = (f"[{'#' * filled}{'.' * (bar_width - filled)}] {self.counts(short)}"
                    f"{running_suffix(self.running, ellipsis, count_more)}")
            if len(line) <= width:
                return line
        return line[:width]

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def terminal_columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (80 when it cannot be told)."""
    try:
        return max(os.get_terminal_size(stream.fileno()).columns, 40)
    except (OSError, ValueError, AttributeError):
        return 80


def ellipsis_for(stream: TextIO) -> str:
    """The ellipsis character where the stream can encode it, else three dots."""
    try:
        "…".encode(getattr(stream, "encoding", None) or "utf-8")
    except (LookupError, UnicodeEncodeError):
        return "..."
    return "…"
