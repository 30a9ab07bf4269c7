"""Gradient distances and the image prior of the attacks' objectives.

A distance compares the dummy gradients with the shared ones, each a sequence of
per-parameter tensors in ``model.parameters()`` order. Both sides are flattened into one
vector so that the hot loop runs a few fused tensor ops, not a Python loop over layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def flatten(tensors: Sequence[Tensor] | Tensor) -> Tensor:
    """All tensors as one vector, in order; a tensor is taken as already flat (a constant target
    flattened once outside the attack's loop)."""
    if isinstance(tensors, Tensor):
        return tensors.reshape(-1)
    return torch.cat([t.reshape(-1) for t in tensors])


def squared_l2_distance(dummy: Sequence[Tensor], target: Sequence[Tensor]) -> Tensor:
    """DLG's objective ||∇W' − ∇W||², summed over layers (Zhu et al. 2019, Eq. 4)."""
    return (flatten(dummy) - flatten(target)).square().sum()


def cosine_distance(dummy: Sequence[Tensor], target: Sequence[Tensor]) -> Tensor:
    """1 − ⟨∇W', ∇W⟩ / (||∇W'|| ||∇W||) over all layers as one vector (Geiping et al. 2020,
    Eq. 4, as their code inversefed computes it: cost ``sim`` with ``indices='def'``).

    0 for parallel gradients, 2 for opposite ones; NaN when either gradient is zero.
    """
    a, b = flatten(dummy), flatten(target)
    return 1 - torch.dot(a, b) / (a.norm() * b.norm())


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic total variation as in inversefed: the mean absolute difference of
    horizontal neighbours plus that of vertical neighbours, over the whole batch."""
    horizontal = (images[..., :, :-1] - images[..., :, 1:]).abs().mean()
    vertical = (images[..., :-1, :] - images[..., 1:, :]).abs().mean()
    return horizontal + vertical
