"""Schemas of the grid's non-factor tables: ``[run]``, ``[slurm]`` and ``[data]``.

None of these change what a cell computes, so none enter the cell id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalgrid.options import option


@dataclass(frozen=True)
class RunOptions:
    """Defaults for ``evalgrid run`` (command-line flags win)."""

    executor: str = option("local", doc="local (process pool) or debug (in-process, sequential)")
    workers: int = option(1, minimum=1, doc="cells run at once by the local executor")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads_per_worker: int = option(0, minimum=0, doc="torch CPU threads per worker; 0: cores / workers")
    stage_cache: str = option("", doc="folder of trained stage models shared across runs; default DIR/stages "
                                      "(relative to the grid file)")


@dataclass(frozen=True)
class SlurmOptions:
    """Cluster resources. Validated now; dispatch to Slurm is a later milestone."""

    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    gpus_per_task: int = option(1, minimum=0)
    cpus_per_task: int = option(4, minimum=1)
    mem_gb: float = option(16.0, positive=True)
    time_min: int = option(60, minimum=1)
    array_parallelism: int = option(256, minimum=1)
    cells_per_job: int = option(1, minimum=1)
    signal_delay_s: int = option(120, minimum=0)
    max_requeues: int = option(3, minimum=0)


@dataclass(frozen=True)
class DataOptions:
    """Where local datasets live; ``root`` is relative to the grid file that sets it."""

    root: str = ""
