"""The grid's ``[metric_options]``: how reconstructions are paired with the originals, and
thresholds and budgets of the metrics that have them.

Only the options of metrics a grid lists enter its cells' ids (:func:`relevant`), so that
setting the IGSA budget does not change the id of a grid that does not measure IGSA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from evalgrid.catalogue.options import canonical_options, option

MatchingRule = Literal["one_to_one", "nearest"]  # see evalgrid.metrics.matching


@dataclass(frozen=True)
class MetricOptions:
    # Added after grids had run: at its default it stays out of the ids (in_id_at_default).
    matching: MatchingRule = option(
        "one_to_one", in_id_at_default=False,
        doc="how reconstructions are paired with the originals: 'one_to_one', an assignment minimising "
            "the summed MSE (SoK); 'nearest', each original's lowest-MSE reconstruction, reuse allowed (FedLeak)")
    leak_psnr: float = option(18.0, doc="τ1 (SoK App. C.II): a sample leaks when its PSNR in dB is above this ...")
    leak_lpips: float = option(0.1, minimum=0, doc="τ2: ... and its LPIPS below this (BRR, WSRR)")
    igsa_samples: int = option(10_000, minimum=1, doc="K perturbed inputs per IGSA estimate (SoK App. B: 10,000)")
    igsa_radius: float = option(1e-3, positive=True, doc="r, the l2 radius of IGSA's perturbations (SoK App. B)")


def relevant(options: MetricOptions, metrics: tuple[str, ...]) -> dict[str, Any]:
    """The options that change what the listed metrics compute (each metric's catalogue entry
    says which it ``reads``), less those left out of ids at their default
    (:func:`evalgrid.catalogue.options.canonical_options`)."""
    from evalgrid.catalogue import METRICS

    read = {name for metric in metrics for name in METRICS[metric].reads}
    return {name: value for name, value in canonical_options(options).items() if name in read}
