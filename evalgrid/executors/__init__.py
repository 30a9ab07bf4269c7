"""Executor registry: where cells run. ``local`` and ``debug`` run them here and return when
they end (:class:`~evalgrid.executors.base.Executor`); ``slurm`` submits them and returns
(:class:`~evalgrid.executors.base.Scheduler`)."""

from __future__ import annotations

from collections.abc import Callable

from evalgrid.catalogue.registry import Registry

ExecutorFactory = Callable[..., object]


def _local(settings):
    from evalgrid.executors.local import LocalExecutor

    return LocalExecutor(settings)


def _debug(settings):
    from evalgrid.executors.debug import DebugExecutor

    return DebugExecutor(settings)


def _slurm(settings):
    from evalgrid.slurm.submit import SlurmScheduler

    return SlurmScheduler(settings)


# Factories import lazily so that validating a grid does not import the worker machinery.
EXECUTORS: Registry[ExecutorFactory] = Registry("executor")
EXECUTORS.register("local", _local)
EXECUTORS.register("debug", _debug)
EXECUTORS.register("slurm", _slurm)
