"""Scoring a trial: :func:`score` pairs an attack's output with the private batch
once and evaluates the selected metrics on those pairs.

Image metrics see pixels in [0, 1] with ``reconstructions[i]`` matched to ``originals[i]``
(see :mod:`evalgrid.metrics.matching`; under the "nearest" rule one reconstruction may be
matched to several originals); label accuracy ignores order altogether.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from dataclasses import dataclass

import torch

from evalgrid.metrics.image import psnr, ssim
from evalgrid.metrics.labels import label_accuracy
from evalgrid.metrics.matching import match_reconstructions
from evalgrid.metrics.options import MatchingRule
from evalgrid.metrics.perceptual import lpips
from evalgrid.fl.threat_model import ClientData


@dataclass(frozen=True)
class MetricValue:
    """A metric's batch mean and, for per-image metrics, its value for each original in order."""

    mean: float
    per_sample: tuple[float, ...] = ()


@dataclass(frozen=True)
class MatchedBatch:
    """What a metric sees: the private batch and the attack's output paired with it."""

    originals: torch.Tensor  # (B, C, H, W) in [0, 1]
    reconstructions: torch.Tensor  # (B, C, H, W) in [0, 1]; [i] is matched to originals[i]
    true_labels: torch.Tensor  # (B,)
    recovered_labels: torch.Tensor  # (B,) in the attack's order
    labels_known: bool  # the attacker was given the true labels


@dataclass(frozen=True)
class Scores:
    matching: torch.Tensor  # (B,) reconstructions[matching[i]] was paired with originals[i]; repeats
    # an index when the rule ("nearest") lets originals share a reconstruction
    values: Mapping[str, MetricValue]  # by metric name, in the order asked for


ImageMetric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (originals, reconstructions) → (B,)


def _per_image(function: ImageMetric, batch: MatchedBatch) -> MetricValue:
    """A per-image metric's values on the batch; the mean is over the batch."""
    values = function(batch.originals, batch.reconstructions).detach().double().cpu()
    return MetricValue(mean=float(values.mean()), per_sample=tuple(values.tolist()))


def psnr_value(batch: MatchedBatch) -> MetricValue:
    return _per_image(psnr, batch)


def ssim_value(batch: MatchedBatch) -> MetricValue:
    return _per_image(ssim, batch)


def lpips_value(batch: MatchedBatch) -> MetricValue:
    return _per_image(lpips, batch)


def label_accuracy_value(batch: MatchedBatch) -> MetricValue:
    return MetricValue(mean=label_accuracy(batch.true_labels, batch.recovered_labels, batch.labels_known))


def score(client: ClientData, reconstructed_pixels: torch.Tensor, recovered_labels: torch.Tensor,
          labels_known: bool, metric_names: Sequence[str], matching: MatchingRule = "one_to_one") -> Scores:
    """Match the reconstructions (clamped to [0, 1]) to the private images once, by the
    ``matching`` rule (:func:`match_reconstructions`), then evaluate each named metric on the pairs."""
    from evalgrid.catalogue import METRICS

    metrics = [METRICS[name] for name in metric_names if METRICS[name].metric_kind == "reconstruction"]
    originals = client.images.detach()
    reconstructions = reconstructed_pixels.detach().to(originals).clamp(0, 1)
    match = match_reconstructions(originals, reconstructions, matching)
    batch = MatchedBatch(originals, reconstructions[match.to(originals.device)],
                         client.labels, recovered_labels.detach().cpu(), labels_known)
    return Scores(match, {metric.name: metric.build(batch) for metric in metrics})


__all__ = ["MatchedBatch", "MetricValue", "Scores", "match_reconstructions", "score"]


@dataclass(frozen=True, eq=False)  # holds the round's tensors: compared by identity
class ModelMetricInputs:
    """What a ``model`` metric may measure: the cell, the victim's round on the client's side
    (:class:`~evalgrid.fl.client.SimulatedRound`: the server's model, the private batch, the local
    training), the dataset's normalisation, and the global model's stage."""

    cell: Any  # CellConfig
    round: Any  # SimulatedRound
    normalization: Any  # Normalization
    stage_accuracy: float  # test accuracy of the attacked global model (NaN when not measured)
    defended_stage: Callable[[], Any]  # the StageRecord of the federation trained with the cell's defense
