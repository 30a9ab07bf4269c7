"""signSGD (Bernstein et al., ICML 2018, Algorithm 1): the client shares only the sign of
every gradient coordinate, g̃_i = sgn(g_i) ∈ {−1, 0, +1}; the SoK's 1-bit quantization
alongside QSGD (Appendix C.III).

The paper's update x ← x − δ·sgn(g) leaves the step size δ to the server, so the shared
update carries no magnitude: no scale option. A coordinate that is exactly zero stays 0
(torch's sgn); the paper's analysis never needs sgn(0).
"""

from __future__ import annotations

from evalgrid.defenses.base import ClientSide, Defense, with_gradients
from evalgrid.defenses.options import SignSGDOptions
from evalgrid.fl.threat_model import SharedUpdate


class SignSGD(Defense):
    """The element-wise sign of the update."""

    def __init__(self, options: SignSGDOptions):
        self.options = options

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        return with_gradients(update, (g.detach().sign() for g in update.gradients))


def build(options: SignSGDOptions) -> SignSGD:
    return SignSGD(options)
