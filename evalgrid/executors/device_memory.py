"""How many cells fit on one GPU at once (``cells_per_device``): one cell's device memory,
measured on the cells a worker has run there, against what was free before.

How it estimates. It measures rather than models the network: after each cell a pinned worker
reports torch's peak reserved memory (the caching allocator's high-water mark over its cells so
far: the model, the double-backward graph of gradient matching, the batch, stacked trials, the
metrics' networks) and the bytes ``torch.cuda.mem_get_info`` finds free. One cell needs that peak
times ``HEADROOM`` (fragmentation, cells a little larger than the ones measured) plus
``CONTEXT_BYTES`` for its worker's own CUDA context, which torch's counters do not see. The memory
free before any worker started is what the first report finds free plus what that worker holds
(its reserved memory and its context). k copies fit when k × one cell ≤ that.

So a device's first worker runs its first cell alone; the others start once it has been
measured (:class:`DeviceBudget`), fewer when k copies do not fit. A later, larger cell lowers the
count again (idle workers beyond it stop); one that still runs out of memory fails alone, as any
cell does. The launcher holds no CUDA context: the numbers come from the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

GIB = 2**30
CONTEXT_BYTES = 512 * 2**20  # a CUDA context with torch's kernels loaded: typically 300-600 MiB
HEADROOM = 1.1


@dataclass(frozen=True)
class DeviceMemory:
    """A worker's GPU memory after a cell, in bytes."""

    peak_reserved: int  # torch's peak reserved memory over the worker's cells so far
    reserved: int  # what torch holds now (its cache is kept between cells)
    free: int  # free on the GPU now, for any process

    def cell_bytes(self) -> int:
        """What one more cell like these needs, its CUDA context included."""
        return int(self.peak_reserved * HEADROOM) + CONTEXT_BYTES

    def free_before(self) -> int:
        """What was free before this worker, the device's first, started."""
        return self.free + self.reserved + CONTEXT_BYTES

    def source(self) -> str:
        return (f"measured: {self.peak_reserved / GIB:.1f} GiB at the peak of the cells run there so far, "
                f"+{HEADROOM - 1:.0%}, +{CONTEXT_BYTES / GIB:.1f} GiB for a worker's CUDA context")


def measure_after_cell() -> DeviceMemory | None:
    """In a worker pinned to a GPU, after a cell: its memory there; None when it used no GPU."""
    import torch

    if not torch.cuda.is_initialized():
        return None
    free, _total = torch.cuda.mem_get_info()
    return DeviceMemory(torch.cuda.max_memory_reserved(), torch.cuda.memory_reserved(), free)


def cells_that_fit(requested: int, free_bytes: int, cell_bytes: int, device: str, source: str
                   ) -> tuple[int, str | None]:
    """How many of ``requested`` cells of ``cell_bytes`` each to run at once in ``free_bytes``
    (at least one), and the message that says why when that is fewer."""
    fit = max(1, min(requested, free_bytes // max(cell_bytes, 1)))
    if fit == requested:
        return fit, None
    return fit, (f"cells_per_device {requested} lowered to {fit}: one cell needs about {cell_bytes / GIB:.1f} GiB "
                 f"of the {free_bytes / GIB:.1f} GiB free on {device} ({source})")


class DeviceBudget:
    """The workers each GPU of a pool may run: one until its first report, then as many of the
    requested ``cells_per_device`` as fit (``say`` gets the message each time that is lowered)."""

    def __init__(self, requested: int, say: Callable[[str], None]):
        self.requested, self.say = requested, say
        self.allowed: dict[str, int] = {}
        self.free_before: dict[str, int] = {}  # from each device's first report
        self.largest: dict[str, DeviceMemory] = {}  # each device's report of the largest peak

    def workers(self, device: str) -> int:
        return self.allowed.get(device, 1)

    def measured(self, device: str, memory: DeviceMemory) -> None:
        free = self.free_before.setdefault(device, memory.free_before())
        largest = self.largest.get(device)
        if largest is None or memory.peak_reserved > largest.peak_reserved:
            largest = self.largest[device] = memory
        fit, message = cells_that_fit(self.requested, free, largest.cell_bytes(), f"cuda:{device}", largest.source())
        if message and fit != self.allowed.get(device):
            self.say(message)
        self.allowed[device] = fit
