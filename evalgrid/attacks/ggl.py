"""GGL, generative gradient leakage (Li et al., CVPR 2022): a gradient-free search of a
generator's latent space for the images whose gradient matches the shared one.

The images are x'(u) = normalise((G(z) + 1)/2) with z = tanh(u) (GGL's ``use_tanh``), G the
prior's generator with its weights fixed (:mod:`evalgrid.priors.dcgan`), and u ∈ R^(B×latent)
for a batch of B. The search minimises GGL's ``ng_loss`` with ``metric='l2'``:

    L(u) = (1/L)·Σ_{l=1..L} ‖∇W_l(x'(u)) − ∇W_l‖²   (+ 0.1·Σ_k KL(z_k) when tanh is off)

the squared L2 distance summed over the L gradient tensors and divided by their number, where
KL(z) = −½·(1 + log(s² + 1e-10) − μ² − s²) for the mean μ and spread s of one image's latent
vector. The optimiser is CMA-ES (:mod:`evalgrid.attacks.cma_es`; GGL's default ``ng_method
CMA``: pycma through nevergrad) started at u ~ U[0, 1)^n with σ₀ = 1, for 500 rounds of 50
candidates (25,000 gradient evaluations). The images returned are those of the best candidate
evaluated (pycma's ``xbest``, which nevergrad's CMA recommends); its L is the final loss.

One step is one gradient evaluation (one candidate), and so is one iteration; every λ-th step
completes a CMA-ES generation and updates the search. As in the reference, generations are
told in whole: when the budget is not a multiple of λ, the last candidates evaluated compete
for the best without an update.

Departures from GGL's code (``reconstructor.py``, ``NGReconstructor``):
- the generator is evalgrid's DCGAN prior (or a user's checkpoint), unconditional; GGL's
  ImageNet runs use BigGAN conditioned on the inferred class, its CelebA runs a WGAN-GP;
- its images are resized to 224×224 for the victim model; ours are generated at the victims'
  resolution, which the prior is trained at;
- it reconstructs one image; a batch of B searches the B latent vectors jointly (n = B·latent),
  labels from a label rule (``label_inference``; GGL's own rule is iDLG's argmin, top-B);
- CMA-ES is evalgrid's own implementation of Hansen's tutorial, not pycma: the same defaults
  (λ = 4 + ⌊3 ln n⌋, active negative weights) but other random draws, and none of pycma's
  extras (restarts, tolerance checks, boundary handling);
- the adaptive variants against defenses (GGL's ``--adaptive``: the defense re-applied to the
  candidates' gradients) are not implemented;
- optional early stopping (off by default) on each generation's best loss, checked as the
  generation ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from evalgrid.attacks import cma_es
from evalgrid.attacks.base import (SteppedAttack, check_finite, device_of, first_and_last, model_gradients,
                                   shared_gradients, term_values)
from evalgrid.attacks.gia_l import prior_images, require_generator
from evalgrid.attacks.labels import fixed_labels
from evalgrid.attacks.options import GGLOptions
from evalgrid.attacks.stopping import EarlyStopping
from evalgrid.fl.threat_model import Reconstruction, ServerView

_GOLDEN = 0x9E3779B97F4A7C15  # spreads the generations' seeds over the 64-bit range


@dataclass
class GGLState:
    """Everything a GGL run changes, candidate by candidate."""

    search: cma_es.CMAState
    seed: int  # each generation's normal draws come from a generator seeded by (seed, generation)
    evaluations: int  # gradient evaluations made
    candidates: Tensor  # y of the running generation's λ candidates, (λ, n); (0, n) between generations
    losses: list[float]  # L of the running generation's candidates evaluated so far
    best_point: Tensor  # u of the best candidate evaluated (n,)
    best_loss: float  # its L
    stopping_best: float  # early stopping's best generation loss
    since_best: int
    stopped: bool
    labels: Tensor
    target: tuple[Tensor, ...]  # the shared gradients (derived from the view)
    first_terms: dict[str, float]


class GGL(SteppedAttack[GGLState]):
    """CMA-ES over the latent vectors of a generator prior."""

    def __init__(self, options: GGLOptions):
        self.options = options
        self.stopping = EarlyStopping(options.early_stop_window, options.early_stop_tolerance)

    def parameters(self, view: ServerView) -> cma_es.CMAParameters:
        dimension = view.batch_size * require_generator(view).latent
        return cma_es.parameters(dimension, self.options.population, self.options.covariance == "diagonal")

    def start(self, view: ServerView, generator: torch.Generator) -> GGLState:
        params = self.parameters(view)
        start = torch.rand(params.dimension, generator=generator, dtype=torch.float64, device=generator.device)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        search = cma_es.initial_state(params, start.to(device_of(view.model)), self.options.sigma)
        return GGLState(search=search, seed=seed, evaluations=0, candidates=search.mean.new_zeros((0, params.dimension)),
                        losses=[], best_point=search.mean.clone(), best_loss=math.inf, stopping_best=math.inf,
                        since_best=0, stopped=False, labels=fixed_labels(view, self.options.label_inference),
                        target=shared_gradients(view), first_terms={})

    def images(self, view: ServerView, point: Tensor) -> Tensor:
        """x'(u) for one candidate u (n,): the B images in input space."""
        latents = point.to(torch.float32).reshape(view.batch_size, require_generator(view).latent)
        with torch.no_grad():
            return prior_images(view, torch.tanh(latents) if self.options.tanh else latents)

    def objective_terms(self, view: ServerView, state: GGLState, point: Tensor) -> dict[str, Tensor]:
        """L(u)'s terms: the mean squared L2 gradient distance, and the KL term without tanh."""
        gradients = model_gradients(view, self.images(view, point), state.labels, create_graph=False)
        terms = {"gradient_l2": sum(((g - t) ** 2).sum() for g, t in zip(gradients, state.target)) / len(gradients)}
        if not self.options.tanh and self.options.kl > 0:
            latents = point.to(torch.float32).reshape(view.batch_size, -1)
            spread = latents.std(dim=1, unbiased=False)
            kl = -0.5 * (1 + torch.log(spread ** 2 + 1e-10) - latents.mean(dim=1) ** 2 - spread ** 2)
            terms["kl"] = self.options.kl * kl.sum()
        return terms

    def step(self, view: ServerView, state: GGLState) -> None:
        """Evaluate the running generation's next candidate (drawing the generation first when
        none is running); the generation's last candidate ends it with CMA-ES's update."""
        params = self.parameters(view)
        if len(state.candidates) == 0:
            draws = torch.Generator().manual_seed((state.seed + _GOLDEN * state.search.generation) % 2**63)
            normal = torch.randn((params.population, params.dimension), generator=draws, dtype=torch.float64)
            state.candidates = cma_es.sample(params, state.search, normal)[0]
        point = state.search.mean + state.search.sigma * state.candidates[len(state.losses)]
        terms = self.objective_terms(view, state, point)
        loss = sum(terms.values())
        check_finite(loss, state.evaluations)
        if state.evaluations == 0:
            state.first_terms = term_values(terms)
        state.losses.append(float(loss))
        state.evaluations += 1
        if state.losses[-1] < state.best_loss:
            state.best_loss, state.best_point = state.losses[-1], point.clone()
        if len(state.losses) == params.population:
            self._end_generation(params, state)

    def _end_generation(self, params: cma_es.CMAParameters, state: GGLState) -> None:
        cma_es.tell(params, state.search, state.candidates, torch.tensor(state.losses, dtype=torch.float64))
        if self.stopping.enabled:
            state.stopping_best, state.since_best, state.stopped = self.stopping.update(
                state.stopping_best, state.since_best, min(state.losses))
        state.candidates, state.losses = state.candidates[:0], []

    def done(self, state: GGLState) -> bool:
        return state.stopped or state.evaluations >= self.options.evaluations

    def result(self, view: ServerView, state: GGLState) -> Reconstruction:
        """The best candidate's images and its L."""
        terms = self.objective_terms(view, state, state.best_point)
        return Reconstruction(images=self.images(view, state.best_point), labels=state.labels.clone(),
                              iterations=state.evaluations, final_loss=float(sum(terms.values())),
                              loss_terms=first_and_last(state.first_terms, terms))

    def planned_iterations(self) -> int:
        return self.options.evaluations


def build(options: GGLOptions) -> GGL:
    return GGL(options)
