"""RunProgress of a run: a bar on a terminal, one line per finished cell otherwise (logs, CI)."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the launcher's progress line imports no torch
    from evalgrid.evaluation.context import CellSummary

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


class RunProgress:
    def __init__(self, total: int, stream: TextIO | None = None):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.started = time.monotonic()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def eta_s(self) -> float:
        finished = self.done + self.failed
        return self.elapsed_s() / finished * self.remaining if finished else math.inf

    def counts(self) -> str:
        return (f"{self.done} done, {self.failed} failed, {self.remaining} remaining, "
                f"ETA {format_duration(self.eta_s()) if self.remaining else '0s'}")

    def update(self, summary: CellSummary) -> None:
        if summary.status == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.interactive:
            filled = round(BAR_WIDTH * (self.done + self.failed) / max(self.total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.counts()}\033[K")
        else:
            detail = f"psnr {summary.psnr:.2f}" if summary.status == "done" else summary.error
            self.stream.write(f"[{self.done + self.failed}/{self.total}] {summary.cell_id} {summary.status} "
                              f"({summary.wall_s:.1f}s) {detail} | {self.counts()}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
