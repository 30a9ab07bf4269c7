"""The RDP accountant of the sampled Gaussian mechanism against closed forms, an independent
numerical integration, the exact Gaussian mechanism, and published values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import norm

from evalgrid.defenses import accountant
from evalgrid.defenses.accountant import epsilon, log_a_fractional, log_a_integer, rdp


def log_a_by_integration(q: float, sigma: float, alpha: float) -> float:
    """log E_{z~N(0,σ²)}[((1 − q) + q·μ₁(z)/μ₀(z))^α] by quadrature (μ₁/μ₀ = e^{(2z−1)/(2σ²)})."""
    def integrand(z: float) -> float:
        mixture = np.logaddexp(math.log1p(-q), math.log(q) + (2 * z - 1) / (2 * sigma ** 2))
        return math.exp(norm.logpdf(z, scale=sigma) + alpha * mixture)

    low, high = -40 * sigma, alpha + 40 * sigma  # the tilted mass sits between 0 and α
    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    points = [p for p in (0.0, 1.0, z0, alpha) if low < p < high]
    value, _ = integrate.quad(integrand, low, high, points=points, epsabs=0, epsrel=1e-12, limit=1000)
    return math.log(value)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 7.25, 32.0])
@pytest.mark.parametrize("sigma", [0.8, 2.0])
def test_full_batch_is_the_gaussian_mechanism(alpha, sigma):
    assert rdp(sigma, 1.0, alpha) == pytest.approx(alpha / (2 * sigma ** 2), rel=1e-12)


@pytest.mark.parametrize("q, sigma, alpha", [
    (0.01, 1.1, 1.5), (0.01, 1.1, 7.3), (0.1, 0.8, 2.5), (0.1, 2.0, 12.5), (0.5, 1.0, 3.7), (0.2, 0.7, 1.1),
])
def test_fractional_orders_match_numerical_integration(q, sigma, alpha):
    assert log_a_fractional(q, sigma, alpha) == pytest.approx(log_a_by_integration(q, sigma, alpha), rel=1e-7)


@pytest.mark.parametrize("q, sigma, alpha", [(0.01, 1.1, 2), (0.05, 0.9, 8), (0.3, 1.5, 32)])
def test_integer_orders_closed_form_matches_series_and_integration(q, sigma, alpha):
    closed = log_a_integer(q, sigma, alpha)
    assert closed == pytest.approx(log_a_fractional(q, sigma, float(alpha)), rel=1e-9)
    assert closed == pytest.approx(log_a_by_integration(q, sigma, float(alpha)), rel=1e-7)


def test_tf_privacy_mnist_tutorial_values():
    # TF-Privacy's MNIST DP-SGD tutorial (N = 60 000, b = 256, δ = 1e-5, classic RDP conversion):
    # σ = 1.1 for 60 epochs gives ε = 3.01; σ = 0.7 for 45 epochs gives ε = 7.10.
    n, b = 60_000, 256
    assert epsilon(1.1, b / n, 60 * n // b, 1e-5, conversion="classic") == pytest.approx(3.01, abs=0.006)
    assert epsilon(0.7, b / n, 45 * n // b, 1e-5, conversion="classic") == pytest.approx(7.10, abs=0.006)


def test_abadi_mnist_setting_matches_integrated_rdp():
    # Abadi et al.'s MNIST setting: σ = 1.1, q = 0.01, 10 000 steps, δ = 1e-5; every order's RDP
    # recomputed by quadrature gives the same ε (≈ 5.63 with Balle et al.'s conversion).
    orders = [1.5, 2.5, 4.0, 6.0, 8.0, 10.5, 16.0, 24.0, 32.0]
    by_quadrature = min(accountant.rdp_to_epsilon(10_000 * log_a_by_integration(0.01, 1.1, a) / (a - 1), a, 1e-5)
                        for a in orders)
    ours = epsilon(1.1, 0.01, 10_000, 1e-5, orders=orders)
    assert ours == pytest.approx(by_quadrature, rel=1e-6)
    assert epsilon(1.1, 0.01, 10_000, 1e-5) == pytest.approx(5.632, abs=0.01)


def exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """The tight ε of a Gaussian mechanism with sensitivity/σ = μ (Balle & Wang 2018)."""
    def excess(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta
    return optimize.brentq(excess, 0.0, 100.0)


@pytest.mark.parametrize("sigma, steps", [(1.0, 1), (2.0, 4), (0.8, 10)])
def test_rdp_bound_is_above_but_close_to_the_exact_gaussian_epsilon(sigma, steps):
    exact = exact_gaussian_epsilon(math.sqrt(steps) / sigma, 1e-5)
    ours = epsilon(sigma, 1.0, steps, 1e-5)
    assert exact <= ours <= 1.3 * exact


def test_balle_conversion_is_tighter_than_the_classic_one():
    assert epsilon(1.0, 0.1, 100, 1e-5) < epsilon(1.0, 0.1, 100, 1e-5, conversion="classic")


def test_epsilon_grows_with_steps_and_sampling_rate_and_falls_with_noise():
    base = epsilon(1.0, 0.1, 100, 1e-5)
    assert epsilon(1.0, 0.1, 200, 1e-5) > base
    assert epsilon(1.0, 0.2, 100, 1e-5) > base
    assert epsilon(1.5, 0.1, 100, 1e-5) < base


def test_degenerate_cases():
    assert epsilon(1.0, 0.0, 100, 1e-5) == 0.0
    assert epsilon(1.0, 0.5, 0, 1e-5) == 0.0
    assert epsilon(0.0, 0.5, 10, 1e-5) == math.inf
    with pytest.raises(ValueError):
        epsilon(1.0, 1.5, 10, 1e-5)
    with pytest.raises(ValueError):
        epsilon(1.0, 0.5, 10, 0.0)
