"""The grid's ``[metric_options]``: thresholds and budgets of the metrics that have them.

Only the options of metrics a grid lists enter its cells' ids (:func:`relevant`), so that
setting the IGSA budget does not change the id of a grid that does not measure IGSA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalgrid.options import option, options_dict


@dataclass(frozen=True)
class MetricOptions:
    leak_psnr: float = option(18.0, doc="τ1 (SoK App. C.II): a sample leaks when its PSNR in dB is above this ...")
    leak_lpips: float = option(0.1, minimum=0, doc="τ2: ... and its LPIPS below this (BRR, WSRR)")
    igsa_samples: int = option(10_000, minimum=1, doc="K perturbed inputs per IGSA estimate (SoK App. B: 10,000)")
    igsa_radius: float = option(1e-3, positive=True, doc="r, the l2 radius of IGSA's perturbations (SoK App. B)")


USED_BY = {"leak_psnr": ("brr", "wsrr"), "leak_lpips": ("brr", "wsrr"),
           "igsa_samples": ("igsa",), "igsa_radius": ("igsa",)}


def relevant(options: MetricOptions, metrics: tuple[str, ...]) -> dict[str, Any]:
    """The options that change what the listed metrics compute."""
    return {name: value for name, value in options_dict(options).items() if set(USED_BY[name]) & set(metrics)}
