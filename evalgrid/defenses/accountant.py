"""Rényi-DP accountant of the sampled Gaussian mechanism (SGM), as used for DP-SGD.

The SGM with sampling rate q and noise multiplier σ (per-sample clipping to C, noise
N(0, σ²C²)) is (α, ε_α)-RDP with (Mironov, Talwar & Zhang 2019, Sec. 3)

    ε_α = log(A_α) / (α − 1),   A_α = E_{z~μ₀}[(μ(z)/μ₀(z))^α],
    μ₀ = N(0, σ²),  μ₁ = N(1, σ²),  μ = (1 − q)·μ₀ + q·μ₁.

Integer α: the binomial expansion is finite,
    A_α = Σ_{k=0}^{α} C(α,k) (1 − q)^{α−k} q^k exp((k² − k)/(2σ²)).
Fractional α: split the integral at z₀ = σ² log(1/q − 1) + 1/2, where qμ₁ = (1 − q)μ₀, and
expand (a + b)^α as a binomial series in the smaller term on each side. Since
μ₀^{1−k} μ₁^k = exp((k² − k)/(2σ²)) · N(z; k, σ²) (completing the square),
    A_α = Σ_{k≥0} C(α,k) [ (1 − q)^{α−k} q^k e^{(k²−k)/(2σ²)} Φ((z₀ − k)/σ)
                          + q^{α−k} (1 − q)^k e^{(j²−j)/(2σ²)} Φ((j − z₀)/σ) ],  j = α − k,
with the generalized binomial coefficients C(α,k) (alternating in sign for k > α). q = 1 is
the Gaussian mechanism itself, ε_α = α/(2σ²). Steps compose additively: T·ε_α.

RDP → (ε, δ): by default the bound of Balle et al. 2020 ("Hypothesis testing interpretations
and Rényi differential privacy", Thm. 21; also Canonne, Kamath & Steinke 2020), as Opacus and
TF-Privacy use today,
    ε = min_α [ T·ε_α + log((α − 1)/α) − (log δ + log α)/(α − 1) ],
or the classic one (Mironov 2017, Prop. 3), ε = min_α [ T·ε_α + log(1/δ)/(α − 1) ].

The accountant assumes Poisson subsampling with rate q; DP-SGD as simulated here takes fixed
consecutive mini-batches, so the ε it reports is the nominal one (as common in FL papers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

# Orders as in common practice (Opacus/TF-Privacy): 1.1 … 10.9 by 0.1, the integers 11 … 63, and
# a few large ones for tiny q·T.
DEFAULT_ORDERS: tuple[float, ...] = (tuple(round(1 + x / 10, 1) for x in range(1, 100))
                                     + tuple(float(a) for a in range(11, 64)) + (64.0, 128.0, 256.0))

Conversion = Literal["balle2020", "classic"]
_SERIES_TOLERANCE = -25.0  # cut the fractional series once its last term is e^-25 of the sum
_SERIES_MAX_TERMS = 4 ** 12


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, *,
            orders: Sequence[float] = DEFAULT_ORDERS, conversion: Conversion = "balle2020") -> float:
    """ε of T = ``steps`` compositions of the sampled Gaussian mechanism at (σ, q), for δ."""
    if not 0 <= sample_rate <= 1:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if noise_multiplier < 0 or steps < 0:
        raise ValueError("noise_multiplier and steps must be >= 0")
    if steps == 0 or sample_rate == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    best = math.inf
    for alpha in orders:
        total = steps * rdp(noise_multiplier, sample_rate, alpha)
        best = min(best, rdp_to_epsilon(total, alpha, delta, conversion))
    return max(0.0, best)


def rdp_to_epsilon(rdp_value: float, alpha: float, delta: float, conversion: Conversion = "balle2020") -> float:
    """The ε of an (α, rdp_value)-RDP mechanism at δ (not minimised over α, may be negative)."""
    if alpha <= 1:
        raise ValueError(f"RDP orders must be > 1, got {alpha}")
    if conversion == "classic":
        return rdp_value + math.log(1 / delta) / (alpha - 1)
    if conversion == "balle2020":
        return rdp_value + math.log1p(-1 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
    raise ValueError(f"unknown conversion {conversion!r}")


def rdp(noise_multiplier: float, sample_rate: float, alpha: float) -> float:
    """ε_α of one step of the sampled Gaussian mechanism (σ = noise_multiplier, q = sample_rate)."""
    sigma, q = float(noise_multiplier), float(sample_rate)
    if alpha <= 1:
        raise ValueError(f"RDP orders must be > 1, got {alpha}")
    if q == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    if q == 1:
        return alpha / (2 * sigma ** 2)
    log_a = log_a_integer(q, sigma, int(alpha)) if float(alpha).is_integer() else log_a_fractional(q, sigma, alpha)
    return max(0.0, log_a) / (alpha - 1)


def log_a_integer(q: float, sigma: float, alpha: int) -> float:
    """log A_α for integer α: the finite binomial sum (all terms positive)."""
    from scipy.special import logsumexp  # here, not at import: 0.17 s that `evalgrid plan` does not need

    k = np.arange(alpha + 1, dtype=np.float64)
    log_binomial = (math.lgamma(alpha + 1) - np.array([math.lgamma(i + 1) + math.lgamma(alpha - i + 1)
                                                         for i in range(alpha + 1)]))
    terms = log_binomial + k * math.log(q) + (alpha - k) * math.log1p(-q) + (k * k - k) / (2 * sigma ** 2)
    return float(logsumexp(terms))


def log_a_fractional(q: float, sigma: float, alpha: float) -> float:
    """log A_α for any α > 1 by the two-sided binomial series (see the module docstring);
    exact for integer α too, where C(α, k) vanishes beyond k = α.

    Past k = α the coefficients alternate in sign and the terms shrink, so the truncation
    error is below the last term kept: the series is cut once that is e^-25 of the sum."""
    from scipy.special import log_ndtr, logsumexp

    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    count = 64
    while True:
        k = np.arange(count, dtype=np.float64)
        factors = alpha - k[:-1]  # C(α, k+1) = C(α, k)·(α − k)/(k + 1)
        finite = bool(np.any(factors == 0))
        if finite:  # integer α: the coefficients are 0 from k = α + 1 on
            k = k[:int(alpha) + 1]
            factors = factors[:int(alpha)]
        log_coef = np.concatenate([[0.0], np.cumsum(np.log(np.abs(factors)) - np.log(k[1:]))])
        signs = np.concatenate([[1.0], np.cumprod(np.sign(factors))])
        j = alpha - k
        low = (log_coef + k * math.log(q) + j * math.log1p(-q) + (k * k - k) / (2 * sigma ** 2)
               + log_ndtr((z0 - k) / sigma))
        high = (log_coef + j * math.log(q) + k * math.log1p(-q) + (j * j - j) / (2 * sigma ** 2)
                + log_ndtr((j - z0) / sigma))
        terms = np.logaddexp(low, high)
        log_total, sign = logsumexp(terms, b=signs, return_sign=True)
        if sign <= 0:
            raise ArithmeticError(f"A_alpha came out non-positive for q={q}, sigma={sigma}, alpha={alpha}")
        converged = count > alpha + 2 and terms[-1] < log_total + _SERIES_TOLERANCE
        if finite or converged:
            return float(log_total)
        if count >= _SERIES_MAX_TERMS:
            raise ArithmeticError(f"the RDP series did not converge for q={q}, sigma={sigma}, alpha={alpha}")
        count *= 4
