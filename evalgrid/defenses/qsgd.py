"""QSGD stochastic quantization (Alistarh et al., NeurIPS 2017, Sec. 3.1), the SoK's
quantization defense (Appendix C.III: QSGD at 1, 2, 3 and 4 bits).

For a vector v and s levels, each coordinate becomes

    Q_s(v_i) = ‖v‖₂ · sgn(v_i) · ξ_i,   ξ_i = (ℓ + 1)/s with probability |v_i|·s/‖v‖₂ − ℓ,
                                          ξ_i = ℓ/s otherwise,

where ℓ = ⌊|v_i|·s/‖v‖₂⌋. Hence E[Q_s(v)] = v (unbiased) and every |Q_s(v_i)| is one of the
s + 1 values {0, 1/s, …, 1}·‖v‖₂.

Choices the papers leave open, made here:
- ``bits`` b encodes the level index ℓ ∈ {0, …, s} in b bits, so s = 2^b − 1 (1 bit: s = 1,
  the ternary {−‖v‖, 0, ‖v‖} QSGD; 4 bits: s = 15); the sign is sent apart, as in QSGD's
  encoding. Implementations that count the sign in the budget use s = 2^(b−1) instead.
- One bucket per tensor (per trainable parameter), with the L2 norm of the analysis; QSGD's
  experiments also use buckets of 512 coordinates and the max-norm, which are not modelled.
- Default 4 bits: the mildest setting of the SoK's sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from evalgrid.defenses.base import ClientSide, Defense, uniform, with_gradients
from evalgrid.options import option
from evalgrid.threat_model import SharedUpdate


@dataclass(frozen=True)
class QSGDOptions:
    bits: int = option(4, minimum=1, maximum=8,
                       doc="bits per level index: s = 2^bits − 1 levels (SoK sweeps 1, 2, 3, 4)")


class QSGD(Defense):
    """Unbiased, norm-scaled stochastic quantization of every gradient tensor to s levels."""

    def __init__(self, options: QSGDOptions):
        self.options = options
        self.levels = 2 ** options.bits - 1  # s

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        return with_gradients(update, (self.quantize(g, client.generator) for g in update.gradients))

    def quantize(self, gradient: Tensor, generator: torch.Generator) -> Tensor:
        """Q_s of one tensor (one bucket), computed in float64 and returned in its dtype."""
        v = gradient.detach().double()
        draws = uniform(v, generator)  # drawn even for a zero tensor: the stream does not depend on values
        norm = torch.linalg.vector_norm(v)
        if norm == 0:
            return torch.zeros_like(gradient)
        scaled = (v.abs() / norm * self.levels).clamp(max=self.levels)  # rounding may give s + 1e-16
        lower = scaled.floor()
        level = lower + (draws < scaled - lower).double()
        return (norm * v.sign() * level / self.levels).to(gradient.dtype)


def build(options: QSGDOptions) -> QSGD:
    return QSGD(options)
