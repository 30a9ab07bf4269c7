"""Restarts run one after another, the best kept: what Inverting Gradients and BayesAttack share.

Each restart optimises the dummy images from its own start (all drawn in ``start``); when it
ends (its iterations, or early stopping) its images are scored by the attack's
:meth:`RestartedAttack.restart_score` (a gradient distance, without priors) and kept if they
score best so far; the next restart then begins. The state must have the fields this module
reads and writes: ``images``, ``optimizer``, ``scheduler``, ``starts``, ``restart``,
``iteration``, ``finished_iterations``, ``best_images``, ``best_score``, ``best_loss``,
``since_best``, ``labels`` and ``first_terms``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor

from evalgrid.attacks.base import SteppedAttack, State, check_finite, first_and_last
from evalgrid.fl.threat_model import Reconstruction, ServerView


class RestartedAttack(SteppedAttack[State]):
    """A :class:`SteppedAttack` whose trial is ``options.restarts`` restarts of
    ``options.iterations`` steps each; the best restart's images are the result."""

    options: Any

    @abstractmethod
    def restart_score(self, view: ServerView, state: State, images: Tensor) -> Tensor:
        """What picks the best restart (lower is better), and the result's ``final_loss``."""

    @abstractmethod
    def final_terms(self, view: ServerView, state: State, images: Tensor) -> dict[str, Tensor]:
        """The objective's terms at the returned images (the result's last loss terms)."""

    @abstractmethod
    def new_restart(self, start: Tensor) -> tuple[Tensor, torch.optim.Optimizer, Any]:
        """(images, optimiser, scheduler or None) of a restart from ``start``."""

    def finish_restart(self, view: ServerView, state: State) -> None:
        """Score the restart that just ended, keep its images if best, and begin the next one."""
        images = state.images.detach()
        score = self.restart_score(view, state, images)
        state.finished_iterations += state.iteration
        check_finite(score, state.finished_iterations)
        if score.item() < state.best_score:
            state.best_images, state.best_score = images.clone(), score.item()
        state.restart += 1
        if state.restart < self.options.restarts:
            state.iteration, state.best_loss, state.since_best = 0, math.inf, 0
            state.images, state.optimizer, state.scheduler = self.new_restart(state.starts[state.restart])

    def done(self, state: State) -> bool:
        return state.restart >= self.options.restarts

    def result(self, view: ServerView, state: State) -> Reconstruction:
        """The best restart's images; ``final_loss`` is their :meth:`restart_score`. Before the
        end (a convergence record's point), the running restart competes as if it ended now;
        the state is left as it is."""
        images, score, iterations = state.best_images, state.best_score, state.finished_iterations
        if not self.done(state):
            running = state.images.detach()
            iterations += state.iteration
            distance = self.restart_score(view, state, running).item()
            if images is None or distance < score:
                images, score = running.clone(), distance
        terms = first_and_last(state.first_terms, self.final_terms(view, state, images))
        return Reconstruction(images=images, labels=state.labels.clone(), iterations=iterations,
                              final_loss=score, loss_terms=terms)

    def planned_iterations(self) -> int:
        return self.options.iterations * self.options.restarts
