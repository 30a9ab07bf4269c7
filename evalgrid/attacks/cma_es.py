"""CMA-ES, the covariance matrix adaptation evolution strategy, as Hansen's tutorial states it
("The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772, Table 1 and the algorithm summary
of its Sec. 4 / App. A), for GGL's gradient-free latent search.

One generation, with z_k ~ N(0, I), C = B·D²·Bᵀ:

    y_k = B·D·z_k,  x_k = m + σ·y_k                       (k = 1..λ, sampled)
    ⟨y⟩_w = Σ_{i≤μ} w_i·y_{i:λ}                             (ranked by f, best first)
    m ← m + c_m·σ·⟨y⟩_w
    p_σ ← (1 − c_σ)·p_σ + √(c_σ(2 − c_σ)μ_eff)·C^(-1/2)·⟨y⟩_w
    σ ← σ·exp((c_σ/d_σ)·(‖p_σ‖/E‖N(0, I)‖ − 1))
    h_σ = 1 if ‖p_σ‖/√(1 − (1 − c_σ)^(2(g+1))) < (1.4 + 2/(n + 1))·E‖N(0, I)‖ else 0
    p_c ← (1 − c_c)·p_c + h_σ·√(c_c(2 − c_c)μ_eff)·⟨y⟩_w
    w°_i = w_i if w_i ≥ 0 else w_i·n/‖C^(-1/2)·y_{i:λ}‖²
    C ← (1 + c_1·δ(h_σ) − c_1 − c_μ·Σ_j w_j)·C + c_1·p_c·p_cᵀ + c_μ·Σ_{i≤λ} w°_i·y_{i:λ}·y_{i:λ}ᵀ

with δ(h_σ) = (1 − h_σ)·c_c(2 − c_c), and the tutorial's default parameters (:func:`parameters`),
negative weights included (active CMA, as pycma runs by default; GGL's reference code reaches
pycma through nevergrad's ``CMA``). ``diagonal=True`` keeps only C's diagonal (sep-CMA-ES, Ros &
Hansen 2008: c_1 and c_μ × (n + 2)/3), for searches whose dimension makes an n×n matrix too big.

Departures from the tutorial, each its own suggestion or pycma's practice:
- B and D are refreshed from C only every ⌊1/(10·n·(c_1 + c_μ))⌋ generations (at least every
  generation), the tutorial's lazy update (its footnote on the O(n³) cost);
- C is symmetrised before each eigendecomposition and its eigenvalues floored at 1e-20·max, so
  rounding can never make D imaginary;
- c_μ includes the 2023 revision's +1/4 in its numerator (as pycma).

The state is plain tensors (float64) so that a search checkpoints and resumes exactly; the
caller supplies each generation's standard normal draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CMAParameters:
    """The strategy parameters of a dimension-n search (Hansen's Table 1)."""

    dimension: int  # n
    population: int  # λ
    parents: int  # μ
    weights: tuple[float, ...]  # w_1..w_λ: μ positive (sum 1), then λ − μ negative or zero
    mu_eff: float  # μ_eff = (Σ_{i≤μ} w_i)² / Σ_{i≤μ} w_i²
    c_sigma: float
    d_sigma: float
    c_c: float
    c_1: float
    c_mu: float
    c_m: float
    chi_n: float  # E‖N(0, I)‖ ≈ √n·(1 − 1/(4n) + 1/(21n²))
    diagonal: bool


def default_population(dimension: int) -> int:
    """λ = 4 + ⌊3 ln n⌋."""
    return 4 + int(math.floor(3 * math.log(dimension)))


def parameters(dimension: int, population: int = 0, diagonal: bool = False) -> CMAParameters:
    """Hansen's defaults for dimension n and λ (0: :func:`default_population`)."""
    n = dimension
    lam = population or default_population(n)
    if n < 1 or lam < 2:
        raise ValueError(f"CMA-ES needs a dimension >= 1 and a population >= 2, not {n} and {lam}")
    mu = lam // 2
    raw = [math.log((lam + 1) / 2) - math.log(i) for i in range(1, lam + 1)]
    positive, negative = raw[:mu], raw[mu:]
    mu_eff = sum(positive) ** 2 / sum(w * w for w in positive)
    negative_sum = sum(negative)
    mu_eff_minus = negative_sum ** 2 / sum(w * w for w in negative) if any(negative) else 0.0
    alpha_cov = 2.0
    c_1 = alpha_cov / ((n + 1.3) ** 2 + mu_eff)
    c_mu = min(1 - c_1, alpha_cov * (0.25 + mu_eff + 1 / mu_eff - 2) / ((n + 2) ** 2 + alpha_cov * mu_eff / 2))
    if diagonal:  # sep-CMA-ES: the diagonal learns (n + 2)/3 times faster
        c_1, c_mu = c_1 * (n + 2) / 3, c_mu * (n + 2) / 3
        if c_1 + c_mu > 1:
            c_1, c_mu = c_1 / (c_1 + c_mu), c_mu / (c_1 + c_mu)
    alpha_mu_minus = 1 + c_1 / c_mu
    alpha_mu_eff_minus = 1 + 2 * mu_eff_minus / (mu_eff + 2)
    alpha_posdef_minus = (1 - c_1 - c_mu) / (n * c_mu)
    negative_scale = min(alpha_mu_minus, alpha_mu_eff_minus, alpha_posdef_minus)
    weights = [w / sum(positive) if w >= 0 else w * negative_scale / abs(negative_sum) for w in raw]
    c_sigma = (mu_eff + 2) / (n + mu_eff + 5)
    d_sigma = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma
    c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    return CMAParameters(n, lam, mu, tuple(weights), mu_eff, c_sigma, d_sigma, c_c, c_1, c_mu, 1.0, chi_n, diagonal)


@dataclass
class CMAState:
    """Where a search stands. Full: ``covariance``, ``basis`` n×n; diagonal: both (n,)."""

    mean: Tensor  # m (n,)
    sigma: float  # σ
    covariance: Tensor  # C, or its diagonal
    basis: Tensor  # B (eigenvectors of C as columns), or ones when diagonal
    scale: Tensor  # D (square roots of C's eigenvalues, or of its diagonal)
    path_sigma: Tensor  # p_σ
    path_c: Tensor  # p_c
    generation: int  # g: generations told so far
    eigen_generation: int  # the generation B and D were computed at


def initial_state(params: CMAParameters, mean: Tensor, sigma: float) -> CMAState:
    """m = ``mean``, σ = ``sigma``, C = I, both paths zero (float64, on mean's device)."""
    n = params.dimension
    mean = mean.detach().to(torch.float64).reshape(n).clone()
    ones = torch.ones(n, dtype=torch.float64, device=mean.device)
    square = torch.eye(n, dtype=torch.float64, device=mean.device)
    return CMAState(mean=mean, sigma=float(sigma), covariance=ones.clone() if params.diagonal else square.clone(),
                    basis=ones.clone() if params.diagonal else square.clone(), scale=ones.clone(),
                    path_sigma=torch.zeros_like(mean), path_c=torch.zeros_like(mean), generation=0,
                    eigen_generation=0)


def sample(params: CMAParameters, state: CMAState, normal: Tensor) -> tuple[Tensor, Tensor]:
    """(y, x), each (λ, n), from the standard normal draws ``normal`` (λ, n)."""
    normal = normal.to(state.mean)
    steps = normal * state.scale
    if not params.diagonal:
        steps = steps @ state.basis.T
    return steps, state.mean + state.sigma * steps


def _whiten(params: CMAParameters, state: CMAState, steps: Tensor) -> Tensor:
    """C^(-1/2)·y for each row y of ``steps`` (with the current B and D)."""
    if params.diagonal:
        return steps / state.scale
    return (steps @ state.basis / state.scale) @ state.basis.T


def tell(params: CMAParameters, state: CMAState, steps: Tensor, fitness: Tensor) -> None:
    """Update ``state`` in place from the generation's ``steps`` y (λ, n) and their ``fitness``
    f(x) (λ,), lower is better; ties keep the sampling order."""
    n, mu = params.dimension, params.parents
    order = torch.sort(fitness.detach().to(torch.float64).cpu(), stable=True).indices.to(steps.device)
    ranked = steps[order]
    weights = torch.tensor(params.weights, dtype=torch.float64, device=steps.device)
    mean_step = weights[:mu] @ ranked[:mu]
    state.mean = state.mean + params.c_m * state.sigma * mean_step
    state.path_sigma = ((1 - params.c_sigma) * state.path_sigma
                        + math.sqrt(params.c_sigma * (2 - params.c_sigma) * params.mu_eff)
                        * _whiten(params, state, mean_step[None])[0])
    norm = float(torch.linalg.vector_norm(state.path_sigma))
    state.sigma *= math.exp(params.c_sigma / params.d_sigma * (norm / params.chi_n - 1))
    corrected = norm / math.sqrt(1 - (1 - params.c_sigma) ** (2 * (state.generation + 1)))
    h_sigma = 1.0 if corrected < (1.4 + 2 / (n + 1)) * params.chi_n else 0.0
    state.path_c = ((1 - params.c_c) * state.path_c
                    + h_sigma * math.sqrt(params.c_c * (2 - params.c_c) * params.mu_eff) * mean_step)
    whitened_sq = _whiten(params, state, ranked).square().sum(dim=1)
    adjusted = torch.where(weights >= 0, weights, weights * n / whitened_sq)
    delta = (1 - h_sigma) * params.c_c * (2 - params.c_c)
    decay = 1 + params.c_1 * delta - params.c_1 - params.c_mu * float(weights.sum())
    if params.diagonal:
        rank_mu = (adjusted[:, None] * ranked.square()).sum(dim=0)
        state.covariance = decay * state.covariance + params.c_1 * state.path_c.square() + params.c_mu * rank_mu
    else:
        rank_mu = (ranked * adjusted[:, None]).T @ ranked
        state.covariance = (decay * state.covariance + params.c_1 * torch.outer(state.path_c, state.path_c)
                            + params.c_mu * rank_mu)
    state.generation += 1
    _refresh_eigen(params, state)


def eigen_interval(params: CMAParameters) -> int:
    """Generations between two eigendecompositions: ⌊1/(10·n·(c_1 + c_μ))⌋, at least 1."""
    return max(1, int(1 / (10 * params.dimension * (params.c_1 + params.c_mu))))


def _refresh_eigen(params: CMAParameters, state: CMAState) -> None:
    if params.diagonal:
        state.scale = state.covariance.clamp_min(1e-20 * float(state.covariance.max())).sqrt()
        return
    if state.generation - state.eigen_generation < eigen_interval(params):
        return
    symmetric = torch.triu(state.covariance) + torch.triu(state.covariance, diagonal=1).T
    values, vectors = torch.linalg.eigh(symmetric)
    state.covariance = symmetric
    state.scale = values.clamp_min(1e-20 * float(values.max())).sqrt()
    state.basis = vectors
    state.eigen_generation = state.generation
