"""What every benchmark script shares: the machine's description, medians of repeated timings,
peak memory, and the markdown section a script prints for benchmarks/README.md.

A script prints its figures as one markdown section (``section``) on stdout;
``benchmarks/regenerate.py`` runs the scripts, keeps each one's latest section in
``benchmarks/results/NAME.md`` and rebuilds the README from them.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIN_REPEATS = 5


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """One line: host CPU and cores, memory, Python, torch and the GPU if any."""
    parts = [f"{cpu_model()}, {os.cpu_count()} cores"]
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        parts.append(f"{pages * page_size / 2**30:.0f} GiB RAM")
    except (ValueError, OSError):
        pass
    parts.append(f"Python {platform.python_version()}")
    try:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name()}")
        else:
            parts.append("no GPU")
    except ImportError:
        pass
    return ", ".join(parts)


@dataclass(frozen=True)
class Timing:
    """Seconds of ``repeats`` runs of one thing."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def __str__(self) -> str:
        return f"{format_seconds(self.median)} (median of {len(self.seconds)}, " \
               f"{format_seconds(min(self.seconds))}–{format_seconds(max(self.seconds))})"


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def repeat(run: Callable[[], object], repeats: int = MIN_REPEATS, *, warmup: int = 1) -> Timing:
    """Time ``run`` ``repeats`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return Timing(tuple(seconds))


@dataclass(frozen=True)
class ProcessRun:
    """One child process: wall seconds, peak resident memory in bytes, and its result."""

    seconds: float
    peak_bytes: int
    completed: subprocess.CompletedProcess


def run_process(command: Sequence[str], *, cwd: Path | None = None, env: dict | None = None,
                check: bool = True) -> ProcessRun:
    """Run ``command``; its peak RSS is read through ``/usr/bin/time`` when present, else from
    getrusage of the children (the largest child so far)."""
    timer = Path("/usr/bin/time")
    wrapped = [str(timer), "-f", "%M", *command] if timer.exists() else list(command)
    started = time.perf_counter()
    done = subprocess.run(wrapped, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if timer.exists():
        *rest, last = done.stderr.rstrip().rsplit("\n", 1) if "\n" in done.stderr.rstrip() else ("", done.stderr)
        peak = int(last.strip()) * 1024 if last.strip().isdigit() else 0
        done = subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "\n".join(rest))
    else:
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return ProcessRun(seconds, peak, done)


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def section(title: str, command: str, body: str) -> str:
    """A README section: title, the command that regenerates it, the date and machine, the body."""
    today = dt.date.today().isoformat()
    return f"## {title}\n\n`{command}`\n\nLatest figures ({today}; {describe_machine()}):\n\n{body.strip()}\n"


def python() -> str:
    return sys.executable
