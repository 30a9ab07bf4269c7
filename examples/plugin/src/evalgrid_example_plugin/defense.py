"""Laplace perturbation: independent noise on every coordinate of the shared update,

    g̃ = g + n,   n_j ~ Laplace(0, b)  i.i.d.,   density exp(−|n|/b) / 2b,

the Laplace mechanism's noise (Dwork et al. 2006) with an absolute scale b in gradient units:
no clipping bound is involved, so no privacy ε is claimed (as for the built-in ``gaussian``).
A Laplace(0, b) draw is b·(E₁ − E₂) with E₁, E₂ ~ Exp(1) independent; both are drawn from the
defense's CPU generator (``client.generator``), so the noise is the same on any device.
"""

from __future__ import annotations

import torch

from evalgrid.defenses.base import ClientSide, Defense, with_gradients
from evalgrid.fl.threat_model import SharedUpdate
from evalgrid_example_plugin.options import LaplaceOptions


def laplace_noise(like: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Laplace(0, scale) draws shaped like ``like``, drawn on the CPU generator then moved to its device."""
    first = torch.empty(like.shape, dtype=like.dtype).exponential_(1.0, generator=generator)
    second = torch.empty(like.shape, dtype=like.dtype).exponential_(1.0, generator=generator)
    return (scale * (first - second)).to(like.device)


class Laplace(Defense):
    """Add Laplace(0, b) to every coordinate."""

    def __init__(self, options: LaplaceOptions):
        self.options = options

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        return with_gradients(update, (g.detach() + laplace_noise(g, self.options.scale, client.generator)
                                       for g in update.gradients))


def build(options: LaplaceOptions) -> Laplace:
    return Laplace(options)
