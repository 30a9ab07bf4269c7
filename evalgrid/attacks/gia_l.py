"""GIA-L: gradient inversion in the latent space of a generative prior, with Jeon et al.'s two
stages (GIAS, NeurIPS 2021), as the SoK runs it (App. B: 400 latent iterations, then 6,000 on
the generator; a DCGAN for CIFAR, BigGAN for ImageNet).

The images are x'(z, w) = normalise((G_w(z) + 1)/2), G the prior's generator (output in
[-1, 1]; :mod:`evalgrid.priors.dcgan`). Both stages minimise Inverting Gradients' objective,
1 − cos(∇W(x'), ∇W) + tv·TV(x') (GIAS's cost ``sim``), with Adam and the step size ×0.1 at
3/8, 5/8 and 7/8 of the stage:

1. latent search: z ∈ R^(B×latent) from N(0, I) with the prior's weights w fixed, for
   ``restarts`` independent draws at once; the draw whose images match the gradient best
   (cosine distance without TV, GIAS's ``_score_trial``) is kept;
2. parameter search (GIAS proper): z fixed at that draw, each image k gets its own copy w_k of
   the generator, initialised at the prior, and the B copies are optimised together.

The generator stays in eval mode (BatchNorm with its running statistics), as in GIAS.

Departures from GIAS's code (``inversefed/reconstruction_algorithms.py``, ``gias=True``):
- its restarts run one after the other with an optimiser each; here they are one tensor with
  one Adam, which is the same update (Adam is elementwise and the restarts' losses are summed);
- it repeats the parameter search for every restart from the same best z, which gives the
  same result each time; it runs once here;
- its milestones are ⌊n/2.667⌋, ⌊n/1.6⌋, ⌊n/1.142⌋, ours ⌊3n/8⌋, ⌊5n/8⌋, ⌊7n/8⌋ (as our IG);
- unknown labels come from a label rule (``label_inference``), as for our other attacks;
- optional early stopping (off by default), per stage: a latent search that stops early goes on
  to the parameter search, as a finished one does.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from evalgrid.attacks.base import (SteppedAttack, check_finite, device_of, first_and_last, model_gradients,
                                   shared_gradients, term_values)
from evalgrid.attacks.inverting_gradients import LR_MILESTONES, cosine_and_tv
from evalgrid.attacks.labels import fixed_labels
from evalgrid.attacks.losses import cosine_distance, flatten
from evalgrid.attacks.options import GIALOptions
from evalgrid.attacks.stopping import EarlyStopping
from evalgrid.fl.threat_model import Reconstruction, ServerView


@dataclass
class GIALState:
    """Everything a GIA-L run changes, step by step."""

    iteration: int  # the schedule's position: latent steps first, then generator steps
    latent_steps: int  # latent steps taken (fewer than latent_iterations when stopped early)
    generator_steps: int  # generator steps taken
    best_loss: float  # the running stage's best loss, for early stopping (inf at a stage's start)
    since_best: int  # the running stage's steps since that best
    latents: Tensor  # (restarts, B, latent): the latent search's z (a leaf)
    latent_optimizer: torch.optim.Adam
    latent_scheduler: torch.optim.lr_scheduler.MultiStepLR | None
    chosen: Tensor  # (B, latent): the best restart's z, fixed for the parameter search (zeros before)
    generators: nn.ModuleList  # one copy of the prior per image, optimised in the parameter search
    generator_optimizer: torch.optim.Adam
    generator_scheduler: torch.optim.lr_scheduler.MultiStepLR | None
    labels: Tensor
    target: Tensor  # the shared gradients, flattened (derived from the view)
    first_terms: dict[str, float]


def require_generator(view: ServerView) -> nn.Module:
    if view.prior is None:
        raise ValueError("the attack optimises through a generator prior, and the view has none")
    return view.prior


def prior_images(view: ServerView, latents: Tensor) -> Tensor:
    """x'(z, w_prior) for latents (..., B, latent): the prior's images (output in [-1, 1]) mapped to
    [0, 1] and normalised, (..., B, C, H, W) in the model's input space."""
    prior = require_generator(view)
    flat = latents.reshape(-1, latents.shape[-1])
    pixels = (prior(flat) + 1) / 2
    return view.normalization.normalize(pixels).reshape(*latents.shape[:-1], *pixels.shape[1:])


def _schedule(optimizer: torch.optim.Adam, iterations: int, decay: bool) -> torch.optim.lr_scheduler.MultiStepLR | None:
    if not decay:
        return None
    milestones = [int(iterations * fraction) for fraction in LR_MILESTONES]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


class GIAL(SteppedAttack[GIALState]):
    """Latent search, then a per-image search of the generator's parameters."""

    def __init__(self, options: GIALOptions):
        self.options = options
        self.stopping = EarlyStopping(options.early_stop_window, options.early_stop_tolerance)

    def start(self, view: ServerView, generator: torch.Generator) -> GIALState:
        prior = require_generator(view)
        options, batch = self.options, view.batch_size
        draw = torch.randn((options.restarts, batch, prior.latent), generator=generator, device=generator.device)
        latents = draw.to(device_of(view.model)).requires_grad_(True)
        latent_optimizer = torch.optim.Adam([latents], lr=options.lr)
        copies = nn.ModuleList(copy.deepcopy(prior).eval().requires_grad_(True) for _ in range(batch))
        generator_optimizer = torch.optim.Adam(copies.parameters(), lr=options.generator_lr)
        return GIALState(
            iteration=0, latent_steps=0, generator_steps=0, best_loss=math.inf, since_best=0, latents=latents, latent_optimizer=latent_optimizer,
            latent_scheduler=_schedule(latent_optimizer, options.latent_iterations, options.lr_decay),
            chosen=torch.zeros_like(latents[0]).detach(), generators=copies,
            generator_optimizer=generator_optimizer,
            generator_scheduler=_schedule(generator_optimizer, options.generator_iterations, options.lr_decay),
            labels=fixed_labels(view, options.label_inference), target=flatten(shared_gradients(view)),
            first_terms={})

    def in_latent_search(self, state: GIALState) -> bool:
        return state.iteration < self.options.latent_iterations

    def latent_images(self, view: ServerView, latents: Tensor) -> Tensor:
        return prior_images(view, latents)

    def generated_images(self, view: ServerView, state: GIALState) -> Tensor:
        """x'(z_k, w_k) for each image k: (B, C, H, W) in input space."""
        pixels = torch.cat([(g(state.chosen[k:k + 1]) + 1) / 2 for k, g in enumerate(state.generators)])
        return view.normalization.normalize(pixels)

    def objective_terms(self, view: ServerView, state: GIALState, images: Tensor,
                        create_graph: bool = True) -> dict[str, Tensor]:
        return cosine_and_tv(view, state.labels, state.target, self.options.tv, images, create_graph)

    def step(self, view: ServerView, state: GIALState) -> None:
        if self.in_latent_search(state):
            self._latent_step(view, state)
        else:
            self._generator_step(view, state)

    def _latent_step(self, view: ServerView, state: GIALState) -> None:
        state.latent_optimizer.zero_grad()
        images = self.latent_images(view, state.latents)
        per_restart = [self.objective_terms(view, state, images[r]) for r in range(self.options.restarts)]
        loss = sum(sum(terms.values()) for terms in per_restart)
        check_finite(loss, state.iteration)
        if not state.first_terms:
            state.first_terms = term_values(per_restart[0])
        stop = self._stops(state, loss)
        loss.backward(inputs=[state.latents])
        _advance(state.latent_optimizer, state.latent_scheduler)
        state.iteration += 1
        state.latent_steps += 1
        if stop:  # on to the parameter search, as at the end of the latent iterations
            state.iteration = self.options.latent_iterations
        if not self.in_latent_search(state):
            self._choose_latents(view, state)
            state.best_loss, state.since_best = math.inf, 0

    def _stops(self, state: GIALState, loss: torch.Tensor) -> bool:
        if not self.stopping.enabled:
            return False
        state.best_loss, state.since_best, stop = self.stopping.update(state.best_loss, state.since_best, loss.item())
        return stop

    def _choose_latents(self, view: ServerView, state: GIALState) -> None:
        """Keep the restart whose images match the gradient best (cosine distance, no TV)."""
        state.chosen.copy_(state.latents.detach()[self._best_restart(view, state)])

    def _best_restart(self, view: ServerView, state: GIALState) -> int:
        with torch.no_grad():
            images = self.latent_images(view, state.latents.detach())
        scores = [float(cosine_distance(model_gradients(view, images[r], state.labels, create_graph=False),
                                        state.target)) for r in range(self.options.restarts)]
        finite = [r for r in range(len(scores)) if math.isfinite(scores[r])]
        if not finite:
            check_finite(torch.tensor(math.nan), state.iteration)
        return min(finite, key=scores.__getitem__)

    def _generator_step(self, view: ServerView, state: GIALState) -> None:
        state.generator_optimizer.zero_grad()
        images = self.generated_images(view, state)
        terms = self.objective_terms(view, state, images)
        loss = sum(terms.values())
        check_finite(loss, state.iteration)
        stop = self._stops(state, loss)
        loss.backward(inputs=list(state.generators.parameters()))
        _advance(state.generator_optimizer, state.generator_scheduler)
        state.iteration += 1
        state.generator_steps += 1
        if stop:
            state.iteration = self.options.latent_iterations + self.options.generator_iterations

    def done(self, state: GIALState) -> bool:
        return state.iteration >= self.options.latent_iterations + self.options.generator_iterations

    def result(self, view: ServerView, state: GIALState) -> Reconstruction:
        """The generated images; ``final_loss`` is their cosine distance (without TV). Asked
        during the latent search (a convergence record's point), the images of the restart that
        matches best so far, through the prior; the state is left as it is."""
        if self.in_latent_search(state):
            best = state.latents.detach()[self._best_restart(view, state)]
            with torch.no_grad():
                images = self.latent_images(view, best)
        else:
            with torch.no_grad():
                images = self.generated_images(view, state)
        terms = self.objective_terms(view, state, images, create_graph=False)
        iterations = state.latent_steps * self.options.restarts + state.generator_steps
        return Reconstruction(images=images.detach(), labels=state.labels.clone(), iterations=iterations,
                              final_loss=float(terms["cosine"]), loss_terms=first_and_last(state.first_terms, terms))

    def planned_iterations(self) -> int:
        return self.options.latent_iterations * self.options.restarts + self.options.generator_iterations


def _advance(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def build(options: GIALOptions) -> GIAL:
    return GIAL(options)
