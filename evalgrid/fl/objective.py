"""The client's training objective, shared by the client and by attackers who simulate it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mean_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """The client's loss: mean cross-entropy; ``targets`` class indices (B,) or probabilities (B, K)."""
    return F.cross_entropy(logits, targets)


def loss_gradients(model: nn.Module, inputs: Tensor, targets: Tensor, *,
                   create_graph: bool = False) -> tuple[Tensor, ...]:
    """∇θ of the mean cross-entropy of ``model(inputs)`` over the trainable parameters, in
    ``model.parameters()`` order. ``targets`` are class indices (B,) or class probabilities
    (B, K). ``create_graph`` keeps the graph so that a distance of these gradients can itself be
    differentiated (gradient matching). The model is used in the mode it is given."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(mean_loss(model(inputs), targets), parameters, create_graph=create_graph)
