"""A running cell's progress file, DIR/running/<cell id>.json: its phase, trial, iteration of
the planned ones and the attack's latest loss, written by the process running the cell and
removed when the cell ends, so that the run's progress line and ``evalgrid status`` (from any
shell; on Slurm, from the login node through the shared filesystem) see inside long cells.

Writes are throttled (:class:`CellProgressWriter`): at most one every ``WRITE_INTERVAL_S`` while
the attack steps, plus one when the phase or the trial changes. Readers trust nothing in the
file: one that is not a small JSON object of the expected types is :class:`DamagedProgress`, a
cell that is done ignores its file, and a file whose process is gone or that was not updated
for ``STALE_S`` is stale (:meth:`CellProgress.is_stale`). Torch-free: the launcher and
``status`` read it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from evalgrid.store.atomic import atomic_write_text
from evalgrid.store.layout import OutputDir, is_cell_id

SCHEMA = 1
WRITE_INTERVAL_S = 2.0  # the most often the file is rewritten while the attack steps
FORCED_INTERVAL_S = 0.25  # the most often a trial's start is written at once (a cell of many short trials)
STALE_S = 120.0  # a file not updated for this long is flagged stale (a long stage training, a hung node, a kill)
MAX_BYTES = 16_384  # a progress file is a few hundred bytes; a larger one is not read
MAX_TEXT = 200  # the longest host or phase accepted
MAX_COUNT = 10**12  # the largest trial, iteration or pid accepted
PHASES = ("preparing", "attacking", "scoring")  # data, model, stage and victim's round; the trials; the metrics


class DamagedProgress(ValueError):
    """A progress file that is not what a cell writes (not JSON, too large, wrong types, another cell's)."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def this_host() -> str:
    """This machine's name, as a progress file records it."""
    return platform.node() or "?"


@dataclass(frozen=True)
class CellProgress:
    """What one running cell's file says."""

    cell_id: str
    phase: str  # one of PHASES (a reader accepts any short printable text: a newer writer's)
    trial: int  # the running trial, counted from 0 as curve.csv's ``trial`` (a stacked chunk's first)
    trials: int  # the cell's trials
    stacked: int  # trials running together (1: one by one)
    iteration: int  # steps the running trial has taken (curve.csv's ``iteration``)
    iterations: int  # steps it plans (0 before the attack starts)
    loss: float | None  # the attack's objective at its latest step (a stacked chunk: the mean over its lanes)
    host: str
    pid: int
    started_at: dt.datetime  # when the cell started, UTC
    updated_at: dt.datetime  # when this file was written, UTC

    def to_json(self) -> str:
        body = {"schema": SCHEMA, **asdict(self)}
        body["started_at"], body["updated_at"] = self.started_at.isoformat(), self.updated_at.isoformat()
        return json.dumps(body, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, cell_id: str) -> CellProgress:
        """The progress in ``text``, the file of ``cell_id``; raises :class:`DamagedProgress`."""
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            raise DamagedProgress("not JSON") from None
        if not isinstance(body, dict) or body.get("schema") != SCHEMA:
            raise DamagedProgress(f"not a progress file of schema {SCHEMA}")
        values = {f.name: _checked(f.name, body.get(f.name)) for f in fields(cls)}
        if values["cell_id"] != cell_id:
            raise DamagedProgress(f"it names another cell ({values['cell_id']})")
        return cls(**values)

    def age_s(self, now: dt.datetime) -> float:
        """Seconds since the file was written (negative: the writer's clock is ahead)."""
        return (now - self.updated_at).total_seconds()

    def process_gone(self, host: str) -> bool:
        """Whether the file was written on ``host`` (this machine) by a process that no longer exists."""
        return self.host == host and not _process_exists(self.pid)

    def is_stale(self, now: dt.datetime, host: str, max_age_s: float = STALE_S) -> bool:
        """Left by a process that is gone, or not updated for ``max_age_s``: not a running cell's view."""
        return self.process_gone(host) or self.age_s(now) > max_age_s

    def describe(self, digits: int = 3) -> str:
        """E.g. ``trial 1/2 it 150/300 loss 1.23e-03`` (the loss to ``digits`` significant
        digits); the phase instead outside the attack."""
        if self.phase != "attacking":
            return self.phase
        last = self.trial + self.stacked
        trials = f"trial {last}/{self.trials}" if self.stacked == 1 else f"trials {self.trial + 1}-{last}/{self.trials}"
        loss = f" loss {self.loss:.{max(digits - 1, 0)}e}" if self.loss is not None else ""
        return f"{trials} it {self.iteration}/{self.iterations}{loss}"


def _checked(name: str, value: Any) -> Any:
    """``value`` of field ``name`` when it has the field's type and range; else DamagedProgress."""
    if name == "cell_id":
        if isinstance(value, str) and is_cell_id(value):
            return value
    elif name in ("phase", "host"):
        if isinstance(value, str) and 0 < len(value) <= MAX_TEXT and value.isprintable():
            return value
    elif name == "loss":
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif name in ("started_at", "updated_at"):
        if isinstance(value, str) and len(value) <= 64:
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                moment = None
            if moment is not None and moment.utcoffset() is not None:
                return moment
    else:  # counts
        least = 1 if name in ("trials", "stacked", "pid") else 0
        if isinstance(value, int) and not isinstance(value, bool) and least <= value <= MAX_COUNT:
            return value
    raise DamagedProgress(f"{name!r} is missing or not valid")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (pid >= 1: never a group)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's, or not ours to ask: not known to be gone
    return True


def read_progress(path: Path, cell_id: str) -> CellProgress:
    """The progress in ``path``; raises FileNotFoundError when there is none and DamagedProgress
    for anything that is not a small regular file (a link, a FIFO, a huge file) holding one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DamagedProgress(f"cannot be opened ({error.strerror or error})") from None
    with os.fdopen(fd, "rb") as handle:
        try:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise DamagedProgress("not a regular file")
            data = handle.read(MAX_BYTES + 1)
        except OSError as error:
            raise DamagedProgress(f"cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_BYTES:
        raise DamagedProgress(f"larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedProgress("not UTF-8 text") from None
    return CellProgress.from_json(text, cell_id)


@dataclass(frozen=True)
class RunningCells:
    """The progress files of a directory's cells that are not done, and a note per damaged one."""

    cells: dict[str, CellProgress] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)  # "<file>: <why>"

    def live(self, now: dt.datetime, host: str, max_age_s: float = STALE_S) -> list[CellProgress]:
        """The cells whose files are not stale (seen from ``host``), the longest-running first."""
        return sorted((p for p in self.cells.values() if not p.is_stale(now, host, max_age_s)),
                      key=lambda p: (p.started_at, p.cell_id))


def read_running(out: OutputDir, cell_ids: Iterable[str] | None = None) -> RunningCells:
    """The progress files in DIR/running/ (of ``cell_ids`` only, when given). A cell that is done
    is left out, and so is a file older than the cell's failure (the cell ended after it was
    written). Never raises: an unreadable folder is no running cell."""
    try:
        names = os.listdir(out.running)
    except OSError:
        return RunningCells()
    wanted = set(cell_ids) if cell_ids is not None else None
    candidates = sorted(name[:-5] for name in names if name.endswith(".json") and is_cell_id(name[:-5]))
    candidates = [c for c in candidates if wanted is None or c in wanted]
    if not candidates:
        return RunningCells()
    done = out.done_ids()
    running = RunningCells()
    for cell_id in candidates:
        if cell_id in done:
            continue
        path = out.cell_progress(cell_id)
        try:
            progress = read_progress(path, cell_id)
        except FileNotFoundError:
            continue  # it ended while we looked
        except DamagedProgress as damage:
            running.damaged.append(f"{path.name}: {damage}")
            continue
        if not _failed_after(out, cell_id, progress):
            running.cells[cell_id] = progress
    return running


def _failed_after(out: OutputDir, cell_id: str, progress: CellProgress) -> bool:
    try:
        written = os.stat(out.failed_result(cell_id)).st_mtime
    except OSError:
        return False
    return written >= progress.updated_at.timestamp()


def remove_progress(out: OutputDir, cell_ids: Iterable[str]) -> None:
    """Delete these cells' progress files, e.g. those left by a run that was killed (failing
    quietly: a progress file is a view, never a reason to stop)."""
    for cell_id in cell_ids:
        try:
            out.cell_progress(cell_id).unlink(missing_ok=True)
        except OSError:
            pass


def remove_leftovers(out: OutputDir, about_to_run: Iterable[str]) -> None:
    """Under the run's lock: delete the files of cells that are done and of the cells this run
    is about to run (nothing else can be running them: a file of theirs is left over)."""
    try:
        names = os.listdir(out.running)
    except OSError:
        return
    present = {name[:-5] for name in names if name.endswith(".json") and is_cell_id(name[:-5])}
    if present:
        remove_progress(out, present & (out.done_ids() | set(about_to_run)))


class CellProgressWriter:
    """Keeps one cell's progress file: written at once when the phase changes (three times a
    cell) and when a trial starts (unless the last write is under ``FORCED_INTERVAL_S`` old: a
    cell of many short trials), else at most every ``WRITE_INTERVAL_S`` as the attack steps, so
    that an attack step costs a clock reading; :meth:`end` removes it. A write that fails (a full
    disk, a network filesystem's hiccup) is skipped: the cell goes on."""

    def __init__(self, path: Path, cell_id: str, trials: int, *, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], dt.datetime] = utc_now):
        self.path, self.clock, self.now = Path(path), clock, now
        self.record = CellProgress(cell_id=cell_id, phase="preparing", trial=0, trials=trials, stacked=1,
                                   iteration=0, iterations=0, loss=None, host=this_host(),
                                   pid=os.getpid(), started_at=now(), updated_at=now())
        self.written_at = -math.inf  # the clock at the last write
        self.writes = 0
        self.lanes = 1  # the running trials' lanes, whose losses the checked loss sums

    def begin(self) -> CellProgressWriter:
        self._write(0.0)
        return self

    def phase(self, phase: str) -> None:
        self.record = replace(self.record, phase=phase)
        self._write(0.0)

    def trial_started(self, trial: int, stacked: int, iterations: int, iteration: int = 0, lanes: int = 1) -> None:
        """Trial ``trial`` (and the ``stacked`` - 1 after it) begins, or resumes at ``iteration``;
        ``lanes``: how many runs (trials × restarts) the loss of a step sums, for their mean."""
        self.lanes = max(lanes, 1)
        self.record = replace(self.record, phase="attacking", trial=trial, stacked=stacked, iteration=iteration,
                              iterations=iterations, loss=None)
        self._write(FORCED_INTERVAL_S)

    def stepped(self, iteration: int, loss: Any = None) -> None:
        """The running trial has taken ``iteration`` steps; ``loss`` (a number or a tensor, read
        only when the file is written) is the latest step's objective, None when not known."""
        if self.clock() - self.written_at < WRITE_INTERVAL_S:
            return
        value = _number(loss)
        self.record = replace(self.record, iteration=iteration, loss=None if value is None else value / self.lanes)
        self._write(WRITE_INTERVAL_S)

    def end(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass

    def _write(self, interval_s: float) -> None:
        """Write the record unless the last write is under ``interval_s`` old."""
        now = self.clock()
        if now - self.written_at < interval_s:
            return
        self.written_at = now
        self.record = replace(self.record, updated_at=self.now())
        try:
            atomic_write_text(self.path, self.record.to_json(), durable=False)  # a view: no fsync
            self.writes += 1
        except OSError:
            pass


def _number(loss: Any) -> float | None:
    if loss is None:
        return None
    try:
        value = float(loss)
    except (TypeError, ValueError, RuntimeError):
        return None
    return value if math.isfinite(value) else None


def start_progress(out: OutputDir, cell_id: str, trials: int) -> CellProgressWriter:
    """The writer of ``cell_id``'s progress file, its first state ("preparing") written."""
    return CellProgressWriter(out.cell_progress(cell_id), cell_id, trials).begin()
