"""What produced a result: evalgrid's version and the git state of its source, taken once
by the launcher (a cell's own process records its host and the plugin packages it loaded)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from evalgrid._version import evalgrid_version


@dataclass(frozen=True)
class Provenance:
    evalgrid_version: str
    git_commit: str | None  # None when evalgrid is not run from a git checkout
    git_dirty: bool | None


def _git(*args: str) -> str | None:
    source = Path(__file__).resolve().parents[2]  # the checkout holding evalgrid/
    try:
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def current_provenance() -> Provenance:
    """Computed once per run by the launcher and handed to every cell."""
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return Provenance(evalgrid_version(), commit, dirty)
