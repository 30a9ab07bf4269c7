"""What the launcher hands every cell of a run (:class:`CellContext`) and what it gets back
(:class:`CellSummary`). Torch-free: the launcher and the Slurm submission import it; only the
processes that run cells import torch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalgrid.launch.provenance import Provenance
from evalgrid.store.layout import OutputDir

if TYPE_CHECKING:
    import torch

# Set in a worker pinned to one GPU (cells_per_device; evalgrid/executors/devices.py): that GPU as
# the launcher numbers it, while the worker itself sees it as its only one, "cuda".
PINNED_GPU_ENV = "EVALGRID_PINNED_GPU"


@dataclass(frozen=True)
class CellContext:
    """What every cell of a run shares; picklable, sent to worker processes."""

    out_root: Path
    grid_name: str
    data_root: Path | None
    device: str  # "auto", "cpu" or "cuda"
    provenance: Provenance
    stage_cache: Path | None = None  # trained stage models; None: out_root/stages
    train_stages: bool = True  # False: stage models come from their own jobs; a missing one fails the cell
    stack_trials: int = 1  # trials of a cell run together as stacked lanes (evaluation/trials.py); 1: one by one; 0: evaluation/packing.py's rule
    pack_cells: int = 1  # cells of one task run as lanes of one stacked attack (evaluation/packed.py); 1: each alone; 0: evaluation/packing.py's rule
    speedups: tuple[str, ...] = ()  # attack-loop switches (evalgrid/evaluation/speedups.py)
    curve_points: int = 20  # points of each trial's convergence record (evaluation/convergence.py); 0: none

    @property
    def stages(self) -> Path:
        return self.stage_cache or OutputDir(self.out_root).stages


@dataclass(frozen=True)
class CellSummary:
    """What a worker reports back to the launcher (the full row is on disk)."""

    cell_id: str
    status: str
    wall_s: float
    error: str = ""
    psnr: float = float("nan")


def resolve_device(requested: str) -> torch.device:
    """The device a cell runs on ("auto": a GPU when this process sees one)."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def device_label(requested: str) -> str:
    """The result row's ``device``: the torch device, and for a worker pinned to one GPU of
    several, that GPU as the launcher numbers it (``cuda:2``)."""
    device = resolve_device(requested)
    pinned = os.environ.get(PINNED_GPU_ENV)
    return f"cuda:{pinned}" if device.type == "cuda" and pinned else str(device)
