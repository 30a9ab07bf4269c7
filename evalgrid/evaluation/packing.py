"""When stacking pays: whether a cell's trials (``[run] stack_trials``) and cells of one
architecture (packed lanes, :mod:`evalgrid.attacks.lanes`) run as lanes of one stacked attack.

The rule is a measurement, not a guess. Stacking is on by default only on a device listed in
:data:`MEASURED` whose latest measured speed-up for that workload is at least :data:`PAYS_AT`;
the figures come from ``benchmarks/gpu.sh`` (its "lanes" rows: Inverting Gradients with T = 10
trials on ConvNet64 batch 1, and 8 packed ResNet-18 batch-4 cells, attack-iterations per second
stacked ÷ one at a time), which prints the rows to add here. Everywhere else stacking is off:
on the CPU it was measured slower (0.9× and 0.5×, benchmarks/results/many_attacks.md), and a
device nobody measured keeps the safe default, one lane at a time.

A value the user sets (``[run] stack_trials``, ``--stack-trials``; ``[run] pack_cells``,
``--pack-cells``) wins over the rule: the rule picks the default, it never overrides a choice
(:func:`default_stack_trials`, :func:`default_pack_cells`). Which cells may be packed together
is decided here too, from their configurations alone (:func:`pack_groups`), so that the local
launcher can group them without torch; the process that runs a pack checks that the attacked
models really stack (evalgrid/evaluation/packed.py). Torch is imported only to name a device.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from evalgrid.grid.cell import CellConfig

TRIALS = "trials"  # a cell's T trials stacked: one model, T starts
CELLS = "cells"  # cells of one architecture packed: each lane its own weights and batch
WORKLOADS = (TRIALS, CELLS)
PAYS_AT = 1.1  # the speed-up stacking must reach on a device to be on there by default
PACKED_CELLS = 8  # cells per pack where packing pays: the 8 ResNet-18 cells benchmarks/gpu.sh measures


@dataclass(frozen=True)
class Measurement:
    """One measured speed-up of stacking on one device (attack-iterations per second, stacked ÷ one at a time)."""

    device: str  # "cpu", or the GPU as torch.cuda.get_device_name() names it, e.g. "NVIDIA H100 80GB HBM3"
    workload: str  # TRIALS or CELLS
    speedup: float
    date: str  # ISO date of the measurement
    source: str  # the results file that holds it


MEASURED: tuple[Measurement, ...] = (
    Measurement("cpu", TRIALS, 0.9, "2026-11-22", "benchmarks/results/many_attacks.md"),
    Measurement("cpu", CELLS, 0.5, "2026-11-22", "benchmarks/results/many_attacks.md"),
    # No GPU has run benchmarks/gpu.sh yet (2026-12-07): stacking stays off on every GPU until its
    # "lanes" rows are added here, each with its device, date and results file.
)


@dataclass(frozen=True)
class StackingDecision:
    """Whether stacking is on by default for a workload on a device, and the measurement that says so."""

    on: bool
    why: str


def stacking_pays(device: str, workload: str, measured: tuple[Measurement, ...] | None = None) -> StackingDecision:
    """On when the latest measurement of ``workload`` on ``device`` (in ``measured``, default
    :data:`MEASURED`) reached :data:`PAYS_AT`; off when it did not, and off when nobody measured it there."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; one of {', '.join(WORKLOADS)}")
    rows = [m for m in (MEASURED if measured is None else measured) if m.device == device and m.workload == workload]
    if not rows:
        return StackingDecision(False, f"stacking {workload} is off on {device}: not measured there "
                                       f"(benchmarks/gpu.sh measures it; on at {PAYS_AT}× or more)")
    latest = max(rows, key=lambda m: m.date)
    seen = f"{latest.speedup:.2f}× measured on {device} on {latest.date} ({latest.source})"
    if latest.speedup >= PAYS_AT:
        return StackingDecision(True, f"stacking {workload} is on: {seen}")
    return StackingDecision(False, f"stacking {workload} is off: {seen}, under the {PAYS_AT}× it must reach")


def device_name(device: torch.device | str) -> str:
    """The name :data:`MEASURED` knows a device by: "cpu", or the GPU's name as torch gives it."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def default_stack_trials(trials: int, device: str, chosen: int | None) -> int:
    """The most trials of a cell run together: ``chosen`` when the user set it, else all ``trials``
    where stacking trials pays on ``device`` (a name, :func:`device_name`), else 1."""
    if chosen is not None:
        return chosen
    return trials if stacking_pays(device, TRIALS).on else 1


def default_pack_cells(device: str, chosen: int) -> int:
    """The most cells that run as lanes of one stacked attack: ``chosen`` when the user set it
    (``[run] pack_cells`` above 0), else :data:`PACKED_CELLS` where packing cells pays on
    ``device`` (a name, :func:`device_name`), else 1 (each cell alone)."""
    if chosen:
        return chosen
    return PACKED_CELLS if stacking_pays(device, CELLS).on else 1


def pack_size(chosen: int, device: str) -> int:
    """:func:`default_pack_cells` for cells that run on ``device`` as a run names it ("auto",
    "cpu", "cuda"): torch is asked for the device's name only when some measurement says packing
    pays somewhere, so a launcher (or a Slurm task's pool) under the safe defaults neither imports
    torch nor starts CUDA. ``chosen``: ``[run] pack_cells``, 0 for the rule."""
    if chosen or not any(m.workload == CELLS and m.speedup >= PAYS_AT for m in MEASURED):
        return chosen or 1
    from evalgrid.evaluation.context import resolve_device

    return default_pack_cells(device_name(resolve_device(device)), 0)


def pack_key(cell: CellConfig) -> str | None:
    """What cells must share to run as lanes of one stacked attack: the attack with its options
    and trials, the attacked architecture and the batch shape (dataset, resolution, batch size);
    None when the attack has no stacked form. Whether that form supports the attack's options,
    and the rest (local training, the defenses' effect on the shared update, train/eval mode),
    is checked where the pack runs (evalgrid/evaluation/packed.py, evalgrid/attacks/lanes.py);
    a pack that fails those checks runs cell by cell."""
    from evalgrid.catalogue import ATTACKS

    if ATTACKS[cell.attack.name].stacked is None:
        return None
    shared = (cell.attack.canonical(), cell.trials, cell.model.canonical(), cell.dataset.canonical(),
              cell.resolution, cell.batch_size)
    return json.dumps(shared, sort_keys=True)


def pack_groups(cells: Sequence[CellConfig], size: int) -> list[list[CellConfig]]:
    """``cells`` in packs of at most ``size`` cells with one :func:`pack_key`, in the order of
    each pack's first cell; a cell without a key, or ``size`` 1, gives packs of one."""
    if size <= 1:
        return [[cell] for cell in cells]
    packs: list[list[CellConfig]] = []
    open_pack: dict[str, list[CellConfig]] = {}
    for cell in cells:
        key = pack_key(cell)
        pack = open_pack.get(key) if key is not None else None
        if pack is None or len(pack) >= size:
            pack = [cell]
            packs.append(pack)
            if key is not None:
                open_pack[key] = pack
        else:
            pack.append(cell)
    return packs
