"""Sample-level leakage rates of the SoK (Appendix C.II): a reconstructed sample leaks when
PSNR > τ1 and LPIPS < τ2 (defaults 18 dB and 0.1).

BRR (batch reconstruction rate): the fraction of the batch's samples that leak, averaged over
the T trials. WSRR (worst-sample reconstruction rate): "the likelihood of reconstructing the
most vulnerable sample", read as the largest per-sample leak rate over the T trials:
max_i (1/T) Σ_t leak(i, t). The text does not spell the formula out; with T = 1 WSRR is 1
when any sample of the batch leaks.
"""

from __future__ import annotations

import numpy as np

from evalgrid.metrics.options import MetricOptions


def leaked(psnr: np.ndarray, lpips: np.ndarray, options: MetricOptions) -> np.ndarray:
    """(T, B) booleans: sample b leaked in trial t."""
    return (np.asarray(psnr) > options.leak_psnr) & (np.asarray(lpips) < options.leak_lpips)


def batch_reconstruction_rate(psnr: np.ndarray, lpips: np.ndarray, options: MetricOptions) -> float:
    return float(leaked(psnr, lpips, options).mean())


def worst_sample_reconstruction_rate(psnr: np.ndarray, lpips: np.ndarray, options: MetricOptions) -> float:
    return float(leaked(psnr, lpips, options).mean(axis=0).max())
