"""The built-in metrics, as catalogue entries: each one's result column, whether it has values
per sample, which ``[metric_options]`` it reads, what it needs, and its implementation."""

from __future__ import annotations

from evalgrid.catalogue.entries import MetricEntry

SSIM_WINDOW = 11  # SSIM's Gaussian window side: 2·int(3.5σ + 0.5) + 1 for σ = 1.5 (metrics/image.py)
LPIPS_MIN_SIZE = 31  # smaller inputs shrink to nothing in AlexNet's second max-pool (metrics/perceptual.py)
LPIPS_WEIGHTS = ("alexnet",)  # names in evalgrid.models.weights.WEIGHTS
LEAK_THRESHOLDS = ("matching", "leak_psnr", "leak_lpips")  # what BRR and WSRR read

ENTRIES = (
    MetricEntry(
        name="psnr", build="evalgrid.metrics.scoring:psnr_value", per_sample=True, reads=("matching",), unit="dB",
        along_curve=True, summary="peak signal-to-noise ratio in dB (an exact copy reads 100)"),
    MetricEntry(
        name="ssim", build="evalgrid.metrics.scoring:ssim_value", per_sample=True, reads=("matching",),
        min_image_size=SSIM_WINDOW, summary="structural similarity, 11x11 Gaussian window (Wang et al. 2004)"),
    MetricEntry(
        name="lpips", build="evalgrid.metrics.scoring:lpips_value", per_sample=True, reads=("matching",),
        higher_is_better=False, required_weights=LPIPS_WEIGHTS, min_image_size=LPIPS_MIN_SIZE,
        summary="learned perceptual distance, AlexNet v0.1 (Zhang et al. 2018)"),
    MetricEntry(
        name="label_acc", build="evalgrid.metrics.scoring:label_accuracy_value",  # ignores the pairing
        summary="fraction of true labels recovered, in any order (NaN when labels were known)"),
    MetricEntry(
        name="brr", build="evalgrid.metrics.leakage:batch_reconstruction_rate_of", metric_kind="leakage",
        requires=("psnr", "lpips"), reads=LEAK_THRESHOLDS,
        summary="batch reconstruction rate: share of samples with PSNR > τ1 and LPIPS < τ2 ([metric_options]), "
                "mean over trials (SoK)"),
    MetricEntry(
        name="wsrr", build="evalgrid.metrics.leakage:worst_sample_reconstruction_rate_of", metric_kind="leakage",
        requires=("psnr", "lpips"), reads=LEAK_THRESHOLDS,
        summary="worst-sample reconstruction rate: the most vulnerable sample's leak rate over the trials (SoK)"),
    MetricEntry(
        name="igsa", build="evalgrid.metrics.igsa:igsa_of_round", metric_kind="model",
        reads=("igsa_samples", "igsa_radius"),
        summary="input-gradient smoothness of the attacked model at the victim's data (SoK Eq. 10)"),
    MetricEntry(
        name="accuracy", build="evalgrid.metrics.utility:stage_accuracy", metric_kind="model",
        needs_test_split=True, always_recorded=True, utility=True,
        summary="test accuracy of the global model at the attacked stage (always recorded for a fedavg stage)"),
    MetricEntry(
        name="defended_accuracy", build="evalgrid.metrics.utility:defended_accuracy", metric_kind="model",
        needs_test_split=True, needs_defended_training=True, utility=True,
        summary="test accuracy after FedAvg training to the stage's round with every client applying the cell's "
                "defense (costs one FL training per stage and defense)"),
)
