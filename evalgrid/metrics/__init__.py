"""Metrics: how well a reconstruction matches the private batch (``scoring.py`` and the
per-metric modules), how much leaks over the trials (``leakage.py``), and the model's utility
and smoothness. ``entries.py`` declares them in the catalogue; ``options.py`` holds the grid's
``[metric_options]``. This module reads the catalogue only: it imports no torch."""

from __future__ import annotations

from collections.abc import Iterable


def with_requirements(metric_names: Iterable[str]) -> tuple[str, ...]:
    """The metrics and those they need (brr needs psnr and lpips), in order, without repeats."""
    from evalgrid.catalogue import METRICS

    out: dict[str, None] = {}
    for name in metric_names:
        out.update(dict.fromkeys(METRICS[name].requires))
        out[name] = None
    return tuple(out)


def required_weights(metric_names: Iterable[str]) -> list[str]:
    """The weights files (names in evalgrid.models.weights.WEIGHTS) that the named metrics need."""
    from evalgrid.catalogue import METRICS

    names = with_requirements(metric_names)
    return list(dict.fromkeys(w for name in names for w in METRICS[name].required_weights))
