"""What produced a result. The launcher takes, once per run, evalgrid's version, the git state of
its source and the command line that launched the run (:func:`current_provenance`); the process
that runs a cell (on Slurm, a task on a compute node) records what it ran with there: the
versions of Python and the numeric libraries, CUDA's, and the GPU (:func:`process_provenance`)."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgrid._version import evalgrid_version


@dataclass(frozen=True)
class Provenance:
    evalgrid_version: str
    git_commit: str | None  # None when evalgrid is not run from a git checkout
    git_dirty: bool | None
    command: str = ""  # the launcher's command line, shell-quoted (a cell's own process may be a Slurm task's)


def _git(*args: str) -> str | None:
    source = Path(__file__).resolve().parents[2]  # the checkout holding evalgrid/
    try:
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def current_provenance(argv: Sequence[str] | None = None) -> Provenance:
    """Computed once per run by the launcher and handed to every cell; ``argv``: the launcher's
    command line (default ``sys.argv``)."""
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return Provenance(evalgrid_version(), commit, dirty, shlex.join(sys.argv if argv is None else argv))


def process_provenance(device: str) -> dict[str, Any]:
    """The result columns of what this process runs a cell with on ``device`` (a torch device
    name such as "cpu" or "cuda:0"): library versions (lpips' None when it is not installed),
    the CUDA version torch was built with (None for a CPU build) and the GPU's name (None off a GPU
    or before this process used CUDA)."""
    return {**_library_versions(), "gpu_name": _gpu_name(device)}


@functools.cache
def _library_versions() -> dict[str, str | None]:
    """Taken once per process (reading the installed packages' metadata costs milliseconds)."""
    import numpy
    import torch
    import torchvision

    return {"torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
            "python_version": platform.python_version(), "numpy_version": numpy.__version__,
            "lpips_version": _installed_version("lpips"), "cuda_version": torch.version.cuda}


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


_gpu_names: dict[str, str] = {}  # device -> its GPU's name, taken once per process


def _gpu_name(device: str) -> str | None:
    """The name of the GPU ``device`` names; None off a GPU, and where this process has not used
    CUDA (the launcher recording a worker that died: asking would cost it a CUDA context on a GPU
    the workers fill) or CUDA cannot answer (a failed cell may leave it broken)."""
    import torch

    if torch.device(device).type != "cuda" or not torch.cuda.is_initialized():
        return None
    if device not in _gpu_names:
        try:
            _gpu_names[device] = torch.cuda.get_device_name(torch.device(device))
        except (RuntimeError, AssertionError):
            return None
    return _gpu_names[device]
