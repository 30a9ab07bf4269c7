"""Gaussian perturbation (the SoK's perturbation, Appendix C.III, after the local DP of
Naseri et al. 2020): independent noise on every coordinate of the shared update,

    g̃ = g + n,   n ~ N(0, σ² I).

σ is absolute, in gradient units: no clipping bound is involved (that is DP-SGD, a separate
defense), so no privacy ε is claimed. The SoK calls its values "multipliers" and sweeps
0.05, 0.1, 0.15, 0.2, 0.25 for ResNet-18 (0.005 to 0.05 for Swin); the default 0.1 is one
of them (and DLG's 10⁻¹ Gaussian noise setting).

What σ is: the SoK's text (App. C.III, "add Gaussian noise with multipliers ([0.05, ...,
0.25] for ResNet-18, [0.005, ..., 0.05] for Swin) to the gradient") never says what the
multiplier multiplies, and names no clipping bound it could be relative to; its artifact
(Zenodo 14664682) is not reachable from here. ROG's first release (KAI-YUE/rog, commit
bd3610f, removed in 04fcfc6) scaled noise per layer relative to the gradient's own spread
(variance var(g)·10^(−snr/10)), per example after clipping; the SoK cites [63] for its noise,
not ROG. We read the multiplier as DLG's absolute σ (Zhu et al. 2019 sweep 10⁻⁴ to 10⁻¹ the
same way), the reading under which the SoK's two sweeps differ by model as their gradients'
scales do. This reading is recorded in analysis/FIDELITY.md as unverified.
"""

from __future__ import annotations

from evalgrid.defenses.base import ClientSide, Defense, standard_normal, with_gradients
from evalgrid.defenses.options import GaussianOptions
from evalgrid.fl.threat_model import SharedUpdate


class Gaussian(Defense):
    """Add N(0, σ²) to every coordinate."""

    def __init__(self, options: GaussianOptions):
        self.options = options

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        sigma = self.options.sigma
        return with_gradients(update, (g.detach() + sigma * standard_normal(g, client.generator)
                                       for g in update.gradients))


def build(options: GaussianOptions) -> Gaussian:
    return Gaussian(options)
