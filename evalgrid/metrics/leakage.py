"""Sample-level leakage rates of the SoK (Appendix C.II): a reconstructed sample leaks when
PSNR > τ1 and LPIPS < τ2 (defaults 18 dB and 0.1).

The SoK's definition (papers/sok-gradient-leakage-fl.txt, line 645): "BRR measures the
proportion of samples in a batch that leaks privacy, while WSRR quantifies the likelihood of
reconstructing the most vulnerable sample. [...] WSRR is calculated using 10 independent attack
initializations, and all the results are averaged over 10 random seeds."

BRR (batch reconstruction rate): the fraction of the batch's samples that leak, averaged over
the T trials. WSRR (worst-sample reconstruction rate), read as the largest per-sample leak rate
over the T trials (the most vulnerable sample's likelihood of being reconstructed):
max_i (1/T) Σ_t leak(i, t). The text does not spell the formula out; with T = 1 WSRR is 1
when any sample of the batch leaks.

Checked against the published Table 5 (analysis/published/sok_table5_metrics.csv), which does
not rule this reading out: in all 14 rows BRR <= WSRR <= N·BRR, the bounds this reading
implies for a batch of N (e.g. L, N = 100: BRR 0.0010, WSRR 0.0875 <= 0.1). Those bounds hold
as well for "the share of trials in which any sample leaks", (1/T) Σ_t max_i leak(i, t), so
the table cannot tell the two apart; the sentence names one sample's likelihood, hence ours.
Aside: every published WSRR is a whole number of 1/80 (0.9875 = 79/80) and every BRR, to its
printed decimals, one of 1/(80·N) (N = 10: 0.3475 = 278/800), while 9 of the 14 WSRRs are not
whole hundredths: under either reading an entry averages 80 attack runs (e.g. 8 seeds of 10
initialisations), not the 10 x 10 the text states.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from evalgrid.metrics.options import MetricOptions


def leaked(psnr: np.ndarray, lpips: np.ndarray, options: MetricOptions) -> np.ndarray:
    """(T, B) booleans: sample b leaked in trial t."""
    return (np.asarray(psnr) > options.leak_psnr) & (np.asarray(lpips) < options.leak_lpips)


def batch_reconstruction_rate(psnr: np.ndarray, lpips: np.ndarray, options: MetricOptions) -> float:
    return float(leaked(psnr, lpips, options).mean())


def worst_sample_reconstruction_rate(psnr: np.ndarray, lpips: np.ndarray, options: MetricOptions) -> float:
    return float(leaked(psnr, lpips, options).mean(axis=0).max())


def batch_reconstruction_rate_of(per_sample: Mapping[str, np.ndarray], options: MetricOptions) -> float:
    """BRR from the per-sample PSNR and LPIPS of every trial ([trial][sample])."""
    return batch_reconstruction_rate(per_sample["psnr"], per_sample["lpips"], options)


def worst_sample_reconstruction_rate_of(per_sample: Mapping[str, np.ndarray], options: MetricOptions) -> float:
    """WSRR from the per-sample PSNR and LPIPS of every trial ([trial][sample])."""
    return worst_sample_reconstruction_rate(per_sample["psnr"], per_sample["lpips"], options)
