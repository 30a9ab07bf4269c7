"""Executor registry: where cells run. ``local`` and ``debug`` run them here and return when
they end (:class:`~evalgrid.executors.base.Executor`); ``slurm`` submits them and returns
(:class:`~evalgrid.executors.base.Scheduler`)."""

from __future__ import annotations

from collections.abc import Callable

from evalgrid.catalogue.entries import Ref
from evalgrid.catalogue.registry import Registry

ExecutorFactory = Callable[..., object]  # (settings) -> Executor or Scheduler

# Each factory is imported when a run starts, so that validating a grid (which checks the
# executor's name) imports none of the worker machinery.
EXECUTORS: Registry[ExecutorFactory] = Registry("executor")
EXECUTORS.register("local", Ref("evalgrid.executors.local:LocalExecutor"))
EXECUTORS.register("debug", Ref("evalgrid.executors.debug:DebugExecutor"))
EXECUTORS.register("slurm", Ref("evalgrid.executors.slurm.submit:SlurmScheduler"))
