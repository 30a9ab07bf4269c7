"""Flat clipping (the SoK's clipping, Appendix C.III: "we consider flat clipping [61]", citing
McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models").

- ``mode = "norm"`` (default; McMahan et al.'s flat clipping, the SoK's [61]): the whole
  update is scaled to L2 norm at most C, g̃ = g · min(1, C / ‖g‖₂), with ‖g‖₂ over all
  tensors of the update ("flat": one norm for the whole model, as opposed to per layer).
- ``mode = "value"``: every coordinate is clamped, g̃_i = min(max(g_i, −C), C), the literal
  reading of the SoK's sentence "the gradient values are all in a predefined bound by clipping
  extreme values". It is kept as an option; the citation decides the default.

Norm clipping keeps the update's direction, so cosine-matching attacks (Inverting Gradients)
are untouched by it, which is what the SoK reports (Sec. 6: "even with a large clip value
that significantly impacts accuracy, it has almost no effect on GIAs").

An update already inside the bound is returned unchanged. Default C = 0.1: the one value in
both of the SoK's sweeps (ResNet-18: 0.5, 0.3, 0.1, 0.05, 0.01; Swin: 1, 0.7, 0.5, 0.3, 0.1).
"""

from __future__ import annotations

import torch

from evalgrid.defenses.base import ClientSide, Defense, with_gradients
from evalgrid.defenses.options import ClippingOptions
from evalgrid.fl.threat_model import SharedUpdate


class Clipping(Defense):
    """Clamp every coordinate to [−C, C], or scale the update down to L2 norm C."""

    def __init__(self, options: ClippingOptions):
        self.options = options

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        bound = self.options.bound
        gradients = [g.detach() for g in update.gradients]
        if self.options.mode == "value":
            return with_gradients(update, (g.clamp(-bound, bound) for g in gradients))
        norm = torch.sqrt(sum((g.double() ** 2).sum().to(gradients[0].device) for g in gradients))
        if norm <= bound:
            return with_gradients(update, (g.clone() for g in gradients))
        scale = bound / norm
        return with_gradients(update, ((g.double() * scale.to(g.device)).to(g.dtype) for g in gradients))


def build(options: ClippingOptions) -> Clipping:
    return Clipping(options)
