"""Metric registry and :func:`score`, which pairs an attack's output with the private batch
once and evaluates the selected metrics on those pairs.

Image metrics see pixels in [0, 1] with ``reconstructions[i]`` matched to ``originals[i]``
(see :mod:`evalgrid.metrics.matching`; under the "nearest" rule one reconstruction may be
matched to several originals); label accuracy ignores order altogether.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from evalgrid.metrics.image import SSIM_WINDOW, psnr, ssim
from evalgrid.metrics.labels import label_accuracy
from evalgrid.metrics.matching import match_reconstructions
from evalgrid.metrics.options import MatchingRule
from evalgrid.metrics.perceptual import LPIPS_MIN_SIZE, REQUIRED_WEIGHTS, lpips
from evalgrid.registry import Registry
from evalgrid.threat_model import ClientData


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


MetricKind = Literal["reconstruction", "leakage", "model"]


@dataclass(frozen=True)
class Metric:
    """``reconstruction`` metrics score each trial's matched batch (``compute``); ``leakage``
    metrics combine per-sample PSNR and LPIPS over the trials (metrics/leakage.py); ``model``
    metrics measure the global model or the client's data, not the reconstruction (the cell
    pipeline computes them)."""

    name: str
    summary: str
    per_sample: bool  # whether MetricValue.per_sample holds one value per image
    higher_is_better: bool
    compute: Callable[[MatchedBatch], MetricValue] | None
    required_weights: tuple[str, ...] = ()  # names in evalgrid.weights.WEIGHTS, checked at preflight
    min_image_size: int = 1  # smallest image side the metric accepts
    kind: MetricKind = "reconstruction"
    requires: tuple[str, ...] = ()  # metrics computed along with this one

    def __repr__(self) -> str:
        return f"Metric({self.name!r}: {self.summary})"


@dataclass(frozen=True)
class Scores:
    matching: torch.Tensor  # (B,) reconstructions[matching[i]] was paired with originals[i]; repeats
    # an index when the rule ("nearest") lets originals share a reconstruction
    values: Mapping[str, MetricValue]  # by metric name, in the order asked for


ImageMetric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (originals, reconstructions) → (B,)


def _per_image(function: ImageMetric) -> Callable[[MatchedBatch], MetricValue]:
    """A registry compute function from a per-image metric; the mean is over the batch."""
    def compute(batch: MatchedBatch) -> MetricValue:
        values = function(batch.originals, batch.reconstructions).detach().double().cpu()
        return MetricValue(mean=float(values.mean()), per_sample=tuple(values.tolist()))
    return compute


def _label_accuracy(batch: MatchedBatch) -> MetricValue:
    return MetricValue(mean=label_accuracy(batch.true_labels, batch.recovered_labels, batch.labels_known))


METRICS: Registry[Metric] = Registry("metric")
METRICS.register("psnr", Metric(
    "psnr", "peak signal-to-noise ratio in dB (an exact copy reads 100)", per_sample=True,
    higher_is_better=True, compute=_per_image(psnr)))
METRICS.register("ssim", Metric(
    "ssim", "structural similarity, 11x11 Gaussian window (Wang et al. 2004)", per_sample=True,
    higher_is_better=True, compute=_per_image(ssim), min_image_size=SSIM_WINDOW))
METRICS.register("lpips", Metric(
    "lpips", "learned perceptual distance, AlexNet v0.1 (Zhang et al. 2018)", per_sample=True,
    higher_is_better=False, compute=_per_image(lpips), required_weights=REQUIRED_WEIGHTS,
    min_image_size=LPIPS_MIN_SIZE))
METRICS.register("label_acc", Metric(
    "label_acc", "fraction of true labels recovered, in any order (NaN when labels were known)",
    per_sample=False, higher_is_better=True, compute=_label_accuracy))
METRICS.register("brr", Metric(
    "brr", "batch reconstruction rate: share of samples with PSNR > τ1 and LPIPS < τ2 ([metric_options]), mean over trials (SoK)",
    per_sample=False, higher_is_better=True, compute=None, kind="leakage", requires=("psnr", "lpips")))
METRICS.register("wsrr", Metric(
    "wsrr", "worst-sample reconstruction rate: the most vulnerable sample's leak rate over the trials (SoK)",
    per_sample=False, higher_is_better=True, compute=None, kind="leakage", requires=("psnr", "lpips")))
METRICS.register("igsa", Metric(
    "igsa", "input-gradient smoothness of the attacked model at the victim's data (SoK Eq. 10)",
    per_sample=False, higher_is_better=True, compute=None, kind="model"))
METRICS.register("accuracy", Metric(
    "accuracy", "test accuracy of the global model at the attacked stage (always recorded for a fedavg stage)",
    per_sample=False, higher_is_better=True, compute=None, kind="model"))
METRICS.register("defended_accuracy", Metric(
    "defended_accuracy", "test accuracy after FedAvg training to the stage's round with every client "
    "applying the cell's defense (costs one FL training per stage and defense)",
    per_sample=False, higher_is_better=True, compute=None, kind="model"))


def score(client: ClientData, reconstructed_pixels: torch.Tensor, recovered_labels: torch.Tensor,
          labels_known: bool, metric_names: Sequence[str], matching: MatchingRule = "one_to_one") -> Scores:
    """Match the reconstructions (clamped to [0, 1]) to the private images once, by the
    ``matching`` rule (:func:`match_reconstructions`), then evaluate each named metric on the pairs."""
    metrics = [METRICS[name] for name in metric_names if METRICS[name].kind == "reconstruction"]
    originals = client.images.detach()
    reconstructions = reconstructed_pixels.detach().to(originals).clamp(0, 1)
    match = match_reconstructions(originals, reconstructions, matching)
    batch = MatchedBatch(originals, reconstructions[match.to(originals.device)],
                         client.labels, recovered_labels.detach().cpu(), labels_known)
    return Scores(match, {metric.name: metric.compute(batch) for metric in metrics})


def required_weights(metric_names: Iterable[str]) -> list[str]:
    """The weights files (names in evalgrid.weights.WEIGHTS) that the named metrics need."""
    names = with_requirements(metric_names)
    return list(dict.fromkeys(w for name in names for w in METRICS[name].required_weights))


def with_requirements(metric_names: Iterable[str]) -> tuple[str, ...]:
    """The metrics and those they need (brr needs psnr and lpips), in order, without repeats."""
    out: dict[str, None] = {}
    for name in metric_names:
        out.update(dict.fromkeys(METRICS[name].requires))
        out[name] = None
    return tuple(out)


__all__ = ["METRICS", "MatchedBatch", "Metric", "MetricValue", "Scores", "match_reconstructions",
           "required_weights", "score", "with_requirements"]
