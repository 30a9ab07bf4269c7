"""Gradient distances and the image prior of the attacks' objectives.

A distance compares the dummy gradients with the shared ones, each a sequence of
per-parameter tensors in ``model.parameters()`` order; the constant target may come flattened
into one vector. The sums run layer by layer against views of the target: concatenating the
dummy gradients every iteration would allocate (and page-fault) a model-sized temporary.
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


def layer_pieces(dummy: Sequence[Tensor], target: Sequence[Tensor] | Tensor) -> list[tuple[Tensor, Tensor]]:
    """(dummy, target) per parameter tensor, both flat; a flat target is split into views."""
    flat_dummy = [d.reshape(-1) for d in dummy]
    if isinstance(target, Tensor):
        if target.numel() != sum(d.numel() for d in flat_dummy):
            raise ValueError(f"the target has {target.numel()} elements, the gradients "
                             f"{sum(d.numel() for d in flat_dummy)}")
        flat_target = torch.split(target.reshape(-1), [d.numel() for d in flat_dummy])
    else:
        flat_target = [t.reshape(-1) for t in target]
    return list(zip(flat_dummy, flat_target, strict=True))


def squared_l2_distance(dummy: Sequence[Tensor], target: Sequence[Tensor] | Tensor) -> Tensor:
    """DLG's objective ||∇W' − ∇W||², summed over layers (Zhu et al. 2019, Eq. 4)."""
    differences = [d - t for d, t in layer_pieces(dummy, target)]
    return torch.stack([torch.dot(e, e) for e in differences]).sum()


def cosine_distance(dummy: Sequence[Tensor], target: Sequence[Tensor] | Tensor) -> Tensor:
    """1 − ⟨∇W', ∇W⟩ / (||∇W'|| ||∇W||) over all layers as one vector (Geiping et al. 2020,
    Eq. 4, as their code inversefed computes it: cost ``sim`` with ``indices='def'``).

    0 for parallel gradients, 2 for opposite ones; NaN when either gradient is zero.
    """
    pieces = layer_pieces(dummy, target)
    product = torch.stack([torch.dot(d, t) for d, t in pieces]).sum()
    dummy_norm = torch.stack([torch.dot(d, d) for d, _ in pieces]).sum().sqrt()
    target_norm = torch.stack([torch.dot(t, t) for _, t in pieces]).sum().sqrt()
    return 1 - product / (dummy_norm * target_norm)


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic total variation as in inversefed: the mean absolute difference of
    horizontal neighbours plus that of vertical neighbours, over the whole batch."""
    horizontal = (images[..., :, :-1] - images[..., :, 1:]).abs().mean()
    vertical = (images[..., :-1, :] - images[..., 1:, :]).abs().mean()
    return horizontal + vertical
