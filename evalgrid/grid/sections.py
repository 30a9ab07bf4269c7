"""Schemas of the grid's non-factor tables: ``[run]``, ``[slurm]`` and ``[data]``.

None of these change what a cell computes, so none enter the cell id (``stack_trials``,
``pack_cells`` and ``speedups`` can change its numbers in the last digits, like thread counts; the row records both;
``curve_points`` changes only how many points its curve.csv holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalgrid.catalogue.options import option


@dataclass(frozen=True)
class RunOptions:
    """Defaults for ``evalgrid run`` (command-line flags win)."""

    executor: str = option("local", doc="local (process pool) or debug (in-process, sequential)")
    workers: int = option(1, minimum=1, doc="cells run at once by the local executor")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads_per_worker: int = option(0, minimum=0, doc="torch CPU threads per worker; 0: cores / workers")
    cells_per_device: int = option(1, minimum=1, doc="cells run at once on each device, each in its own worker: "
                                                     "k per visible GPU (each worker pinned to one), k on the CPU; "
                                                     "workers is then k x devices (evalgrid/executors/devices.py)")
    stack_trials: int = option(0, minimum=0, doc="a cell's attack trials run together as stacked lanes, at most "
                                                 "this many at once (Inverting Gradients); 1: one by one; 0: as "
                                                 "measured to pay on the cell's device (evalgrid/evaluation/"
                                                 "packing.py: one by one on every device so far)")
    pack_cells: int = option(0, minimum=0, doc="cells of one architecture, batch shape and attack (with its "
                                               "options and trials) run as lanes of one stacked attack, at most "
                                               "this many per pack, within one local run or one Slurm task "
                                               "(Inverting Gradients; evalgrid/evaluation/packed.py); 1: each "
                                               "alone; 0: as measured to pay on the device (evalgrid/evaluation/"
                                               "packing.py: each alone on every device so far)")
    speedups: str = option("", doc="comma-separated attack-loop switches: tf32, channels_last, bf16, fp16 "
                                   "(evalgrid/evaluation/speedups.py; none by default)")
    curve_points: int = option(20, minimum=0, doc="points of each trial's convergence record (loss and PSNR every "
                                                  "k steps and at the last; DIR/artifacts/<cell>/curve.csv), each "
                                                  "about one gradient evaluation more; 0: none")
    stage_cache: str = option("", doc="folder of trained stage models shared across runs; default DIR/stages "
                                      "(relative to the grid file)")


@dataclass(frozen=True)
class SlurmOptions:
    """Cluster resources per Slurm task, for ``--executor slurm`` (evalgrid/executors/slurm/resources.py).

    The same keys make a cluster profile (slurm/profiles/NAME.toml); the grid's keys win over
    its profile's. Extra sbatch options go in a ``[slurm.sbatch]`` table."""

    profile: str = option("", doc="a cluster profile: NAME (slurm/profiles/ or ~/.config/evalgrid/slurm/) or a path")
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    gpus_per_task: int = option(1, minimum=0)
    cpus_per_task: int = option(4, minimum=1)
    mem_gb: float = option(16.0, positive=True)
    time_min: int = option(60, minimum=1, doc="per task: a task runs cells_per_job cells")
    array_parallelism: int = option(256, minimum=1, doc="tasks of the grid running at once")
    max_array_size: int = option(0, minimum=0, doc="tasks per array; 0: the cluster's MaxArraySize")
    cells_per_job: int = option(1, minimum=1, doc="cells run one after another in one task")
    cells_per_device: int = option(1, minimum=1, doc="a task's cells run this many at once on each of its GPUs (or "
                                                     "its CPUs), in worker processes; give cpus_per_task enough "
                                                     "for them")
    signal_delay_s: int = option(120, minimum=0, doc="SIGUSR2 this long before the time limit: checkpoint, requeue")
    max_requeues: int = option(3, minimum=0, doc="times a task may be requeued (time limit or preemption)")
    sbatch: tuple[tuple[str, str], ...] = ()  # [slurm.sbatch]: extra options, e.g. mail-type = "END"


@dataclass(frozen=True)
class DataOptions:
    """Where local datasets live; ``root`` is relative to the grid file that sets it."""

    root: str = ""
