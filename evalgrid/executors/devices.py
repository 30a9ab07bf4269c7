"""Which device each worker of a local pool runs on, for ``cells_per_device = k``.

The pool runs k workers per device: on GPUs, k per visible GPU (``CUDA_VISIBLE_DEVICES``, which
Slurm sets to a task's GPUs, else every GPU torch counts), worker i pinned to GPU i mod n by
setting its own ``CUDA_VISIBLE_DEVICES`` before it touches CUDA, so that its "cuda" is that GPU;
on the CPU, k workers share the machine. The launcher only counts GPUs: workers are spawned, not
forked, so they inherit no CUDA state from it. With k = 1 nothing here is used (today's pool).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from evalgrid.errors import UserError
from evalgrid.evaluation.context import PINNED_GPU_ENV


def visible_gpus() -> tuple[str, ...]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices, UUIDs or
    MIG ids), else their indices; CUDA ignores the names after the first it cannot use, so do we."""
    import torch

    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return tuple(str(index) for index in range(count))
    return tuple(name.strip() for name in listed.split(",") if name.strip())[:count]


def pool_devices(requested: str) -> tuple[str, ...]:
    """The GPUs a pool's workers are pinned to for ``requested`` ("auto", "cpu", "cuda"); () when
    the cells run on the CPU."""
    if requested == "cpu":
        return ()
    import torch

    if requested == "auto" and not torch.cuda.is_available():
        return ()
    return visible_gpus()


def worker_devices(devices: Sequence[str], cells_per_device: int) -> tuple[str | None, ...]:
    """Worker i's GPU, round-robin: ``devices[i % len(devices)]``, ``cells_per_device`` workers per
    GPU; without GPUs, ``cells_per_device`` workers pinned to none (None)."""
    if not devices:
        return (None,) * cells_per_device
    return tuple(devices[index % len(devices)] for index in range(cells_per_device * len(devices)))


def pool_size(workers: int, cells_per_device: int, devices: Sequence[str]) -> int:
    """How many workers a local run starts: ``workers`` when cells_per_device is 1 (its default),
    else cells_per_device per device; a ``workers`` above 1 that says otherwise is refused."""
    if cells_per_device == 1:
        return workers
    size = cells_per_device * max(1, len(devices))
    if workers not in (1, size):
        where = f"{len(devices)} GPU(s) ({', '.join(devices)})" if devices else "1 device (the CPU)"
        raise UserError(f"workers = {workers} (--workers or [run] workers) and cells_per_device = "
                        f"{cells_per_device} (--cells-per-device or [run] cells_per_device) disagree: with "
                        f"cells_per_device above 1 the local executor runs cells_per_device workers per device, "
                        f"{cells_per_device} x {where} = {size} here. Leave workers out (or set it to {size}), "
                        f"or set cells_per_device = 1 to choose the number of workers alone.")
    return size


def pin_to_gpu(device: str) -> None:
    """In a worker, before torch initialises CUDA: ``device`` becomes its only GPU, "cuda"."""
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    os.environ[PINNED_GPU_ENV] = device
