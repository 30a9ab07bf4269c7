"""Many independent gradient-matching problems advanced as one: *lanes*.

A lane is one attack run: the attacker's view (model weights, shared update, the client's
local training as the attacker believes it), its labels and its starting images. Lanes of
the same architecture and batch shape are stacked along a new leading dimension and their
objective is evaluated for all of them at once with ``torch.func.vmap`` over
``functional_call``: the weights are shared when every lane attacks the same model (the T
trials of one cell) or stacked when they differ (several cells packed in one process). Each
lane keeps its own loss, so its gradient, and every elementwise optimiser step, is the one it
would get alone; only floating-point summation order can differ from the sequential path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from evalgrid.fl.threat_model import LocalTraining
from evalgrid.fl.objective import mean_loss
from evalgrid.fl.threat_model import ServerView


class NotStackable(ValueError):
    """These views cannot share one stacked evaluation (the message says what differs)."""


@dataclass(frozen=True, eq=False)
class StackedModel:
    """The lanes' weights and buffers, stacked along dim 0 where they differ between lanes."""

    model: nn.Module  # the architecture (the first lane's module; its own tensors are not used)
    weights: dict[str, Tensor]  # trainable parameters: (L, ...) when ``shared_weights`` is False
    buffers: dict[str, Tensor]  # always (L, ...): BatchNorm in train mode writes its running statistics
    shared_weights: bool
    names: tuple[str, ...]  # trainable parameter names in model.parameters() order
    selected: tuple[str, ...]  # the names whose gradients are matched (view.gradient_selection)
    training: LocalTraining | None


def stack_views(views: Sequence[ServerView], lanes: Sequence[int]) -> StackedModel:
    """Stack the attacker's models of ``views`` for ``lanes`` (each lane an index into
    ``views``); they must share architecture, batch shape, local training and gradient
    selection (:class:`NotStackable` says which differs)."""
    first = views[0]
    names = tuple(n for n, p in first.model.named_parameters() if p.requires_grad)
    for view in views[1:]:
        _check_same(first, view, names)
    selection = first.gradient_selection
    selected = names if selection is None else tuple(names[i] for i in selection)
    shared = all(view.model is first.model for view in views)
    weights = {n: p.detach() for n, p in first.model.named_parameters() if n in names}
    if not shared:
        per_view = [dict(view.model.named_parameters()) for view in views]
        weights = {n: torch.stack([per_view[v][n].detach() for v in lanes]) for n in names}
    per_view_buffers = [dict(view.model.named_buffers()) for view in views]
    buffers = {n: torch.stack([per_view_buffers[v][n].detach().clone() for v in lanes])
               for n, _ in first.model.named_buffers()}
    return StackedModel(first.model, weights, buffers, shared, names, selected, first.local_training)


def _check_same(first: ServerView, view: ServerView, names: tuple[str, ...]) -> None:
    other = tuple(n for n, p in view.model.named_parameters() if p.requires_grad)
    shapes = [p.shape for p in first.model.parameters()], [p.shape for p in view.model.parameters()]
    differences = {
        "architecture": type(first.model) is not type(view.model) or other != names or shapes[0] != shapes[1],
        "train/eval mode": first.model.training != view.model.training,
        "data shape or batch size": (first.data_shape, first.update.num_samples) != (view.data_shape,
                                                                                     view.update.num_samples),
        "local training": first.local_training != view.local_training,
        "gradient selection": first.gradient_selection != view.gradient_selection,
        "normalisation": first.normalization != view.normalization,
    }
    differing = [what for what, differs in differences.items() if differs]
    if differing:
        raise NotStackable(f"the views differ in {', '.join(differing)}")


def lane_update(stacked: StackedModel) -> Callable[[dict[str, Tensor], dict[str, Tensor], Tensor, Tensor], Tensor]:
    """One lane's simulated client update as one flat vector of the selected gradients: the
    gradient of the mean loss (FedSGD) or the sum of the U local steps' gradients (FedAvg), as
    :func:`evalgrid.fl.local_training.local_update` computes it, written with ``torch.func``."""
    model, names, selected, training = stacked.model, stacked.names, stacked.selected, stacked.training

    def loss(weights: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        return mean_loss(functional_call(model, {**weights, **buffers}, (inputs,)), targets)

    def update(weights: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        buffers = {n: b.clone() for n, b in buffers.items()}
        if training is None or training.is_single_gradient(len(inputs)):
            gradients = grad(loss)(weights, buffers, inputs, targets)
        else:
            current, gradients = dict(weights), None
            for batch in training.step_batches(len(inputs)):
                step = grad(loss)(current, buffers, inputs[batch], targets[batch])
                gradients = step if gradients is None else {n: gradients[n] + step[n] for n in names}
                current = {n: current[n] - training.lr * step[n] for n in names}
        return torch.cat([gradients[n].reshape(-1) for n in selected])

    return update


LaneObjective = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (images, update, target, aux) → loss


def stacked_gradient(stacked: StackedModel, objective: LaneObjective) -> Callable[..., tuple[Tensor, Tensor]]:
    """A function of (images (L, B, C, H, W), labels (L, B), targets (L, P), aux (L, ...)) that
    returns every lane's ∂objective/∂images and objective value, evaluated in one vmap."""
    update = lane_update(stacked)

    def lane(images: Tensor, weights: dict[str, Tensor], buffers: dict[str, Tensor], labels: Tensor,
             target: Tensor, aux: Tensor) -> Tensor:
        return objective(images, update(weights, buffers, images, labels), target, aux)

    batched = vmap(grad_and_value(lane), in_dims=(0, None if stacked.shared_weights else 0, 0, 0, 0, 0))

    def evaluate(images: Tensor, labels: Tensor, targets: Tensor, aux: Tensor) -> tuple[Tensor, Tensor]:
        return batched(images, stacked.weights, stacked.buffers, labels, targets, aux)

    return evaluate
