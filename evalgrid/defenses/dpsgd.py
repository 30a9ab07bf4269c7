"""DP-SGD (Abadi et al., CCS 2016, Algorithm 1) inside the client's local training, as FedLeak
combines it with Soteria (Sec. 6.4): at every local step each sample's gradient is clipped
to L2 norm C, the clipped gradients are summed, N(0, σ²C² I) is added, and the sum is divided
by the mini-batch size b,

    g̃ = (1/b) · (Σ_i g_i · min(1, C/‖g_i‖₂) + N(0, σ²C² I)).

The steps themselves run in :func:`evalgrid.fl.local_training.local_update`; this defense only
asks for them (``private_gradients``) and leaves the shared update as it is. ``epsilon`` is the
(ε, δ) guarantee of the victim's round from the RDP accountant (:mod:`.accountant`): the
sampled Gaussian mechanism with q = b/N, composed over the U local steps.

Defaults: C = 1 and σ = 1 (the usual DP-SGD starting point, as in Opacus' MNIST example; FedLeak's
own values were lost from our copy of its text); δ = 10⁻⁵ (Abadi et al.'s δ for MNIST).
"""

from __future__ import annotations

import torch

from evalgrid.defenses import accountant
from evalgrid.defenses.base import ClientSide, Defense, with_gradients
from evalgrid.defenses.options import DPSGDOptions
from evalgrid.fl.local_training import PrivateGradients
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.fl.threat_model import SharedUpdate


class DPSGD(Defense):
    """Per-sample clipping and Gaussian noise in every local step; reports ε by RDP accounting."""

    def __init__(self, options: DPSGDOptions):
        self.options = options

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        return with_gradients(update, update.gradients)  # the noise went in during local training

    def private_gradients(self, generator: torch.Generator) -> PrivateGradients:
        return PrivateGradients(self.options.clip_norm, self.options.noise_multiplier, generator)

    def epsilon(self, training: LocalTraining, num_samples: int) -> float:
        sample_rate = min(1.0, training.minibatch_size / num_samples)
        return accountant.epsilon(self.options.noise_multiplier, sample_rate, training.steps, self.options.delta)


def build(options: DPSGDOptions) -> DPSGD:
    return DPSGD(options)
