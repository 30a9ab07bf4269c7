"""Inverting Gradients (Geiping et al. 2020), as their code inversefed runs it: minimise
1 − cos(∇W(x'), ∇W) + tv·TV(x') (Eq. 4) with Adam on the sign of ∇x', the learning rate
×0.1 at 3/8, 5/8 and 7/8 of the iterations, x' clamped into the pixel box after every
step; of ``restarts`` trials the one with the lowest cosine distance (without TV) wins.
With ``early_stop_window`` set, a trial ends once cosine + TV has not improved for that many
steps (:mod:`.stopping`) and the next restart begins; the milestones stay at fractions of
``iterations``.

Preset: the paper's CIFAR-10 setting in inversefed (``reconstruct_image.py`` with
``options.py`` defaults): 24,000 iterations, lr 0.1, tv 1e-4, 1 restart, signed, boxed,
lr decay, init N(0, 1), all layers. Differences from inversefed: it switches the model to
eval mode, we keep the client's mode; its milestones are ⌊n/2.667⌋, ⌊n/1.6⌋, ⌊n/1.142⌋,
ours ⌊3n/8⌋, ⌊5n/8⌋, ⌊7n/8⌋; unknown labels come from a label rule (inversefed: iDLG for
one image, else DLG's joint labels); a non-finite loss or score raises instead of being
skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from evalgrid.attacks.base import (check_finite, dummy_images, model_gradients, optimizer_step, shared_gradients,
                                   term_values)
from evalgrid.attacks.labels import fixed_labels
from evalgrid.attacks.losses import cosine_distance, flatten, total_variation
from evalgrid.attacks.options import InvertingGradientsOptions
from evalgrid.attacks.restarts import RestartedAttack
from evalgrid.attacks.stopping import EarlyStopping
from evalgrid.fl.threat_model import ServerView

LR_MILESTONES = (3 / 8, 5 / 8, 7 / 8)  # fractions of the iterations where the rate drops ×0.1


def cosine_and_tv(view: ServerView, labels: Tensor, target: Tensor, tv: float, images: Tensor,
                  create_graph: bool = True) -> dict[str, Tensor]:
    """Eq. 4's terms at ``images``: the cosine distance of the update they give to ``target``,
    and tv·TV(images) when tv > 0."""
    gradients = model_gradients(view, images, labels, create_graph=create_graph)
    terms = {"cosine": cosine_distance(gradients, target)}
    if tv > 0:
        terms["tv"] = tv * total_variation(images)
    return terms


@dataclass
class InvertingGradientsState:
    """Everything an Inverting Gradients run changes, step by step."""

    restart: int  # the running trial (== restarts when all are done)
    iteration: int  # steps taken in the running trial
    finished_iterations: int  # steps taken in the finished trials (fewer than planned when stopped early)
    best_loss: float  # the running trial's best loss for early stopping (inf before its first step)
    since_best: int  # the running trial's steps since that best
    starts: Tensor  # (restarts, B, C, H, W): every trial's initial images, drawn up front
    images: Tensor  # the running trial's dummy inputs x' (a leaf), in the model's input space
    optimizer: torch.optim.Adam
    scheduler: torch.optim.lr_scheduler.MultiStepLR | None
    labels: Tensor
    best_images: Tensor | None  # the best finished trial's images
    best_score: float  # its cosine distance; inf before a trial finishes
    target: Tensor  # the shared gradients, flattened, on the model's device (derived from the view)
    box: tuple[Tensor, Tensor]  # the input-space bounds of pixels in [0, 1] (derived from the view)
    first_terms: dict[str, float]  # each weighted loss term at the first trial's first step (empty before it)


class InvertingGradients(RestartedAttack[InvertingGradientsState]):
    """Signed Adam on cosine distance + TV, boxed, with restarts."""

    def __init__(self, options: InvertingGradientsOptions):
        self.options = options
        self.stopping = EarlyStopping(options.early_stop_window, options.early_stop_tolerance)

    def start(self, view: ServerView, generator: torch.Generator) -> InvertingGradientsState:
        starts = torch.stack([dummy_images(self.options.init, view, generator) for _ in range(self.options.restarts)])
        images, optimizer, scheduler = self.new_restart(starts[0])
        return InvertingGradientsState(
            restart=0, iteration=0, finished_iterations=0, best_loss=math.inf, since_best=0, starts=starts,
            images=images, optimizer=optimizer, scheduler=scheduler,
            labels=fixed_labels(view, self.options.label_inference), best_images=None, best_score=math.inf,
            target=flatten(shared_gradients(view)), box=view.normalization.pixel_box(starts), first_terms={})

    def new_restart(self, start: Tensor) -> tuple[Tensor, torch.optim.Adam, torch.optim.lr_scheduler.MultiStepLR | None]:
        images = start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([images], lr=self.options.lr)
        if not self.options.lr_decay:
            return images, optimizer, None
        milestones = [int(self.options.iterations * fraction) for fraction in LR_MILESTONES]
        return images, optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)

    def step(self, view: ServerView, state: InvertingGradientsState) -> None:
        options, images = self.options, state.images
        state.optimizer.zero_grad()
        terms = self.objective_terms(view, state, images)
        loss = sum(terms.values())
        check_finite(loss, state.finished_iterations + state.iteration)
        if not state.first_terms:
            state.first_terms = term_values(terms)
        stop = False
        if self.stopping.enabled:
            state.best_loss, state.since_best, stop = self.stopping.update(state.best_loss, state.since_best,
                                                                          loss.item())
        loss.backward(inputs=[images])
        if options.signed:
            images.grad.sign_()
        optimizer_step(state.optimizer, state.scheduler, images, state.box if options.boxed else None)
        state.iteration += 1
        if state.iteration == options.iterations or stop:
            self.finish_restart(view, state)

    def objective_terms(self, view: ServerView, state: InvertingGradientsState, images: Tensor,
                        create_graph: bool = True) -> dict[str, Tensor]:
        """Eq. 4's terms at ``images`` (:func:`cosine_and_tv`)."""
        return cosine_and_tv(view, state.labels, state.target, self.options.tv, images, create_graph)

    def restart_score(self, view: ServerView, state: InvertingGradientsState, images: Tensor) -> Tensor:
        """The cosine distance without TV."""
        return cosine_distance(model_gradients(view, images, state.labels, create_graph=False), state.target)

    def final_terms(self, view: ServerView, state: InvertingGradientsState, images: Tensor) -> dict[str, Tensor]:
        return self.objective_terms(view, state, images, create_graph=False)

    def restore(self, view: ServerView, generator: torch.Generator, saved: dict[str, Any]) -> InvertingGradientsState:
        state = super().restore(view, generator, saved)
        if "finished_iterations" not in saved:  # a checkpoint from before early stopping: every trial ran in full
            state.finished_iterations = state.restart * self.options.iterations
        return state


def build(options: InvertingGradientsOptions) -> InvertingGradients:
    return InvertingGradients(options)
