"""CMA-ES (evalgrid/attacks/cma_es.py) against Hansen's tutorial (arXiv:1604.00772): its default
parameters written out here from Table 1, one generation's update written out from the
algorithm summary, and the behaviour that defines the method: it solves the sphere, and the
full covariance learns a rotated ill-conditioned problem that the diagonal variant cannot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evalgrid.attacks import cma_es


def test_the_defaults_of_dimension_10_are_the_well_known_ones():
    params = cma_es.parameters(10)
    assert (params.population, params.parents) == (10, 5)  # λ = 4 + ⌊3 ln 10⌋, μ = ⌊λ/2⌋
    assert params.mu_eff == pytest.approx(3.1672, abs=1e-4)  # pycma: "(5_w,10)-aCMA-ES (mu_w=3.2, ...)"
    assert params.weights[0] == pytest.approx(0.4563, abs=1e-4)


def table_1(n: int, lam: int) -> dict[str, float]:
    """Hansen's Table 1, written out independently."""
    mu = lam // 2
    raw = np.log((lam + 1) / 2) - np.log(np.arange(1, lam + 1))
    mu_eff = raw[:mu].sum() ** 2 / (raw[:mu] ** 2).sum()
    mu_eff_minus = raw[mu:].sum() ** 2 / (raw[mu:] ** 2).sum()
    c1 = 2 / ((n + 1.3) ** 2 + mu_eff)
    cmu = min(1 - c1, 2 * (0.25 + mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
    negative = min(1 + c1 / cmu, 1 + 2 * mu_eff_minus / (mu_eff + 2), (1 - c1 - cmu) / (n * cmu))
    weights = np.where(raw >= 0, raw / raw[raw >= 0].sum(), raw * negative / -raw[raw < 0].sum())
    return {"mu_eff": mu_eff, "c_1": c1, "c_mu": cmu, "weights": weights,
            "c_sigma": (mu_eff + 2) / (n + mu_eff + 5),
            "d_sigma": 1 + 2 * max(0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + (mu_eff + 2) / (n + mu_eff + 5),
            "c_c": (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n),
            "chi_n": math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n ** 2))}


@pytest.mark.parametrize("n, lam", [(2, 0), (10, 0), (128, 0), (30, 50)])
def test_the_parameters_are_table_1s(n, lam):
    params = cma_es.parameters(n, lam)
    expected = table_1(n, params.population)
    assert params.population == (lam or 4 + int(3 * math.log(n)))
    for name in ("mu_eff", "c_1", "c_mu", "c_sigma", "d_sigma", "c_c", "chi_n"):
        assert getattr(params, name) == pytest.approx(expected[name], rel=1e-12), name
    np.testing.assert_allclose(params.weights, expected["weights"], rtol=1e-12)
    assert sum(params.weights[:params.parents]) == pytest.approx(1.0)


def test_the_diagonal_variant_learns_n_plus_2_over_3_times_faster():
    full, diagonal = cma_es.parameters(40), cma_es.parameters(40, diagonal=True)
    assert diagonal.c_1 == pytest.approx(full.c_1 * 42 / 3) and diagonal.c_mu == pytest.approx(full.c_mu * 42 / 3)


def test_one_generation_is_the_algorithm_summary_written_out():
    n, generator = 4, torch.Generator().manual_seed(0)
    params = cma_es.parameters(n)
    state = cma_es.initial_state(params, torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64), 0.3)
    # move C away from I first, so that the second generation exercises B, D and C^(-1/2)
    for _ in range(3):
        normal = torch.randn(params.population, n, generator=generator, dtype=torch.float64)
        steps, points = cma_es.sample(params, state, normal)
        cma_es.tell(params, state, steps, (points ** 2 * torch.arange(1, n + 1)).sum(dim=1))
    m, sigma, C = state.mean.numpy().copy(), state.sigma, state.covariance.numpy().copy()
    B, D = state.basis.numpy().copy(), state.scale.numpy().copy()
    ps, pc, g = state.path_sigma.numpy().copy(), state.path_c.numpy().copy(), state.generation
    normal = torch.randn(params.population, n, generator=generator, dtype=torch.float64)
    steps, points = cma_es.sample(params, state, normal)
    fitness = (points ** 2 * torch.arange(1, n + 1)).sum(dim=1)
    cma_es.tell(params, state, steps, fitness)

    p = table_1(n, params.population)
    z = normal.numpy()
    y = (B @ (D[:, None] * z.T)).T
    np.testing.assert_allclose(steps.numpy(), y, rtol=1e-12)
    np.testing.assert_allclose(points.numpy(), m + sigma * y, rtol=1e-12)
    order = np.argsort(fitness.numpy(), kind="stable")
    ranked, w, mu = y[order], p["weights"], params.parents
    yw = w[:mu] @ ranked[:mu]
    inv_sqrt = B @ np.diag(1 / D) @ B.T
    ps_new = (1 - p["c_sigma"]) * ps + math.sqrt(p["c_sigma"] * (2 - p["c_sigma"]) * p["mu_eff"]) * inv_sqrt @ yw
    sigma_new = sigma * math.exp(p["c_sigma"] / p["d_sigma"] * (np.linalg.norm(ps_new) / p["chi_n"] - 1))
    h = float(np.linalg.norm(ps_new) / math.sqrt(1 - (1 - p["c_sigma"]) ** (2 * (g + 1)))
              < (1.4 + 2 / (n + 1)) * p["chi_n"])
    pc_new = (1 - p["c_c"]) * pc + h * math.sqrt(p["c_c"] * (2 - p["c_c"]) * p["mu_eff"]) * yw
    w_circ = np.array([wi if wi >= 0 else wi * n / np.linalg.norm(inv_sqrt @ yi) ** 2 for wi, yi in zip(w, ranked)])
    delta = (1 - h) * p["c_c"] * (2 - p["c_c"])
    C_new = ((1 + p["c_1"] * delta - p["c_1"] - p["c_mu"] * w.sum()) * C + p["c_1"] * np.outer(pc_new, pc_new)
             + p["c_mu"] * sum(wi * np.outer(yi, yi) for wi, yi in zip(w_circ, ranked)))
    np.testing.assert_allclose(state.mean.numpy(), m + sigma * yw, rtol=1e-12)
    np.testing.assert_allclose(state.path_sigma.numpy(), ps_new, rtol=1e-10)
    assert state.sigma == pytest.approx(sigma_new, rel=1e-12)
    np.testing.assert_allclose(state.path_c.numpy(), pc_new, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(state.covariance.numpy(), C_new, rtol=1e-10, atol=1e-15)
    values, _ = np.linalg.eigh(C_new)  # n = 4 refreshes B and D every generation
    np.testing.assert_allclose(np.sort(state.scale.numpy()), np.sqrt(values), rtol=1e-10)


def minimise(f, n: int, diagonal: bool, generations: int, seed: int = 0) -> tuple[int, float]:
    """(generations used, best f) of a search from m = 1, σ = 0.5, stopping below 1e-10."""
    params = cma_es.parameters(n, diagonal=diagonal)
    state = cma_es.initial_state(params, torch.ones(n, dtype=torch.float64), 0.5)
    generator, best = torch.Generator().manual_seed(seed), math.inf
    for generation in range(1, generations + 1):
        steps, points = cma_es.sample(params, state, torch.randn(params.population, n, generator=generator,
                                                                  dtype=torch.float64))
        fitness = torch.stack([f(x) for x in points])
        best = min(best, float(fitness.min()))
        if best < 1e-10:
            return generation, best
        cma_es.tell(params, state, steps, fitness)
    return generations, best


def test_it_solves_the_sphere_in_the_known_number_of_evaluations():
    used, best = minimise(lambda x: (x ** 2).sum(), 10, diagonal=False, generations=400)
    assert best < 1e-10 and used * 10 < 3000  # pycma: about 1,800 evaluations to 1e-10 in 10-D


def test_the_full_covariance_learns_a_rotated_ellipsoid_the_diagonal_cannot():
    n = 8
    rotation, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    axes = torch.tensor([1e4 ** (i / (n - 1)) for i in range(n)], dtype=torch.float64)
    rotated = lambda x: (axes * (rotation @ x) ** 2).sum()  # noqa: E731
    separable = lambda x: (axes * x ** 2).sum()  # noqa: E731
    assert minimise(rotated, n, diagonal=False, generations=500)[1] < 1e-10
    assert minimise(rotated, n, diagonal=True, generations=500)[1] > 1e-4
    assert minimise(separable, n, diagonal=True, generations=500)[1] < 1e-10


def test_rounding_cannot_make_the_covariance_lose_definiteness():
    params = cma_es.parameters(6)
    state = cma_es.initial_state(params, torch.zeros(6, dtype=torch.float64), 1.0)
    generator = torch.Generator().manual_seed(3)
    for _ in range(200):  # a flat function: ranks are noise, the negative weights push hardest
        steps, points = cma_es.sample(params, state, torch.randn(params.population, 6, generator=generator,
                                                                  dtype=torch.float64))
        cma_es.tell(params, state, steps, torch.rand(params.population, generator=generator, dtype=torch.float64))
    assert torch.linalg.eigvalsh(state.covariance).min() > 0
    assert torch.equal(state.covariance, state.covariance.T)
