"""Inverting Gradients over many lanes at once: the T trials of a cell (each with its
restarts) or the trials of several cells of one architecture, stacked (see :mod:`.lanes`).

Every lane is exactly the sequential attack of :mod:`.inverting_gradients`: the same starts
drawn from the same generators in the same order, its own cosine distance + TV, the sign of
its own gradient, Adam (elementwise, so stacking does not mix lanes), the same learning-rate
schedule and box; at the end each lane is scored alone, and each trial keeps its best
restart. Only the floating-point order of the batched kernels can differ from running the
lanes one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from evalgrid.attacks.base import SteppedAttack, check_finite, dummy_images, model_gradients, shared_gradients
from evalgrid.attacks.inverting_gradients import LR_MILESTONES, InvertingGradientsOptions
from evalgrid.attacks.labels import fixed_labels
from evalgrid.attacks.lanes import StackedModel, stack_views, stacked_gradient
from evalgrid.attacks.losses import cosine_distance, flatten, total_variation
from evalgrid.fl.threat_model import Reconstruction, ServerView


@dataclass(frozen=True)
class Lanes:
    """Which run each lane is: its view (an index into the views) and its trial and restart."""

    views: tuple[int, ...]
    trials: tuple[int, ...]
    restarts: tuple[int, ...]


@dataclass
class StackedState:
    """Everything the stacked run changes, step by step."""

    iteration: int
    images: Tensor  # (L, B, C, H, W): every lane's dummy inputs (a leaf)
    optimizer: torch.optim.Adam
    scheduler: torch.optim.lr_scheduler.MultiStepLR | None
    labels: Tensor  # (L, B)
    targets: Tensor  # (L, P): every lane's shared gradients, flattened (derived from the views)
    box: tuple[Tensor, Tensor]  # the input-space bounds of pixels in [0, 1] (derived from the views)


class StackedInvertingGradients(SteppedAttack[StackedState]):
    """The trials of one or more IG runs as lanes of one vmapped objective.

    ``views[i]`` is attacked by ``trials_per_view`` trials, each drawing its restarts from its
    own generator, as :class:`~.inverting_gradients.InvertingGradients` would; ``start`` takes
    the generators of every (view, trial) in that order and ``result`` gives one
    :class:`Reconstruction` per (view, trial)."""

    @classmethod
    def supports(cls, options: InvertingGradientsOptions) -> bool:
        """Early stopping needs per-lane stops, which the lanes do not have: not stacked."""
        return not options.early_stop_window

    @classmethod
    def lanes_per_trial(cls, options: InvertingGradientsOptions) -> int:
        """Each trial's restarts run as lanes of their own."""
        return options.restarts

    def __init__(self, options: InvertingGradientsOptions, views: Sequence[ServerView], trials_per_view: int):
        self.options, self.views = options, tuple(views)
        restarts = options.restarts
        per_view = trials_per_view * restarts
        self.lanes = Lanes(
            views=tuple(v for v in range(len(views)) for _ in range(per_view)),
            trials=tuple(t for _ in views for t in range(trials_per_view) for _ in range(restarts)),
            restarts=tuple(r for _ in views for _ in range(trials_per_view) for r in range(restarts)))
        self.stacked: StackedModel = stack_views(self.views, self.lanes.views)
        self.trials_per_view = trials_per_view
        self._evaluate = stacked_gradient(self.stacked, self._lane_objective)

    def _lane_objective(self, images: Tensor, update: Tensor, target: Tensor, aux: Tensor) -> Tensor:
        loss = 1 - torch.dot(update, target) / (update.norm() * target.norm())
        if self.options.tv > 0:
            loss = loss + self.options.tv * total_variation(images)
        return loss

    def start(self, view: ServerView | None, generator: Sequence[torch.Generator]) -> StackedState:
        """``generator``: one generator per (view, trial), views outer; ``view`` is unused (the
        views were given to the constructor)."""
        generators = list(generator)
        if len(generators) != len(self.views) * self.trials_per_view:
            raise ValueError(f"{len(generators)} generators for {len(self.views)} views × {self.trials_per_view} trials")
        starts = [dummy_images(self.options.init, self.views[v], generators[v * self.trials_per_view + t])
                  for v, t in zip(self.lanes.views, self.lanes.trials)]
        images = torch.stack(starts).requires_grad_(True)
        labels = [fixed_labels(view, self.options.label_inference) for view in self.views]
        targets = [flatten(shared_gradients(view)) for view in self.views]
        optimizer = torch.optim.Adam([images], lr=self.options.lr)
        scheduler = None
        if self.options.lr_decay:
            milestones = [int(self.options.iterations * fraction) for fraction in LR_MILESTONES]
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        return StackedState(
            iteration=0, images=images, optimizer=optimizer, scheduler=scheduler,
            labels=torch.stack([labels[v] for v in self.lanes.views]),
            targets=torch.stack([targets[v] for v in self.lanes.views]),
            box=self.views[0].normalization.pixel_box(starts[0]))

    def step(self, view: ServerView | None, state: StackedState) -> None:
        images = state.images
        aux = images.new_zeros(len(images))
        gradient, losses = self._evaluate(images, state.labels, state.targets, aux)
        check_finite(losses.sum(), state.iteration)
        images.grad = gradient.sign() if self.options.signed else gradient
        state.optimizer.step()
        if state.scheduler is not None:
            state.scheduler.step()
        if self.options.boxed:
            low, high = state.box
            with torch.no_grad():
                images.clamp_(low.unsqueeze(0), high.unsqueeze(0))
        state.iteration += 1

    def planned_iterations(self) -> int:
        """Steps of one (view, trial): its restarts' iterations."""
        return self.options.iterations * self.options.restarts

    def done(self, state: StackedState) -> bool:
        return state.iteration >= self.options.iterations

    def result(self, view: ServerView | None, state: StackedState) -> list[Reconstruction]:
        """One reconstruction per (view, trial): its best restart by cosine distance (no TV),
        each lane scored alone as the sequential attack scores it."""
        best: dict[tuple[int, int], tuple[float, Tensor, Tensor]] = {}
        for lane, (v, t) in enumerate(zip(self.lanes.views, self.lanes.trials)):
            lane_view, images = self.views[v], state.images[lane].detach()
            score = cosine_distance(model_gradients(lane_view, images, state.labels[lane], create_graph=False),
                                    state.targets[lane])
            check_finite(score, self.options.iterations * (self.lanes.restarts[lane] + 1))
            if (v, t) not in best or score.item() < best[v, t][0]:
                best[v, t] = (score.item(), images.clone(), state.labels[lane].clone())
        iterations = self.options.iterations * self.options.restarts
        return [Reconstruction(images=images, labels=labels, iterations=iterations, final_loss=score)
                for (score, images, labels) in (best[v, t] for v in range(len(self.views))
                                                for t in range(self.trials_per_view))]
