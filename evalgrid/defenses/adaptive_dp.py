"""Adaptive DP: Adap DP-FL (Fu, Chen & Han, "Adap DP-FL: Differentially private federated
learning with adaptive noise", TrustCom 2022), FedLeak's [21] (Sec. 6.4, Fig. 5: "adaptive DP's
decay mechanism ... reduces gradient noise injection over time").

Adap DP-FL is DP-SGD (Abadi et al. 2016) in every client's local training, with two schedules
across FL rounds:

- adaptive noise: the server starts from σ_0 and, after each round in which its global model's
  validation loss fell, multiplies the noise multiplier by β < 1 (σ_{t+1} = β·σ_t, else
  σ_{t+1} = σ_t), so after d such rounds

      σ_t = σ_0 · β^d;

- adaptive clipping: client k clips in round t to its own bound C_t^k, the mean L2 norm of its
  noisy gradients of round t − 1 (computed from values already released, so it costs no
  privacy); C_0 in the first round.

Every local step of client k in round t is then

    g̃ = (1/b) · (Σ_i g_i · min(1, C_t^k/‖g_i‖₂) + N(0, σ_t² (C_t^k)² I)),

run by :func:`evalgrid.fl.local_training.local_update` as for :mod:`.dpsgd`; the shared update is
left as it is. ``epsilon`` is the victim's round's (ε, δ) at σ_t from the RDP accountant (the
sampled Gaussian mechanism with q = b/N over the U local steps), as DP-SGD reports its round's.

The round is an option: a defense sees one round of one client (:class:`.base.ClientSide`
carries no round index, no validation loss and no earlier update), so where the victim's round
stands in the schedule is given explicitly: ``decayed_rounds`` = d and ``clip_norm`` = C_t^k.

Sources: the paper's full text and code were not reachable from here. The mechanism above is
the one its abstract states (adaptive clipping "for different clients and different rounds",
"decreasing noises" as the gradients converge), the first author's own summary of it
(JeffffffFu/Awesome-Differential-Privacy-and-Meachine-Learning, README: a per-client, per-round
adaptive clipping norm and a per-round decay of the noise multiplier), and a public
re-implementation's specification, which cites its Eqs. 6-8 for the clipping rule, Theorem 1 for
RDP accounting at each round's σ_t, and decays σ by β after the validation loss has fallen.

Departures from the paper, and why:
- No schedule runs inside a cell: σ_t and C_t^k are options (see above). In defended stage
  training (``defended_accuracy``) every round uses the same σ_t and C_t^k, so that utility is
  the one of a constant-noise run at the victim's round, not of the decaying schedule.
- The decay trigger (a fall of the validation loss, possibly over several rounds) is not
  simulated: ``decayed_rounds`` counts the decays, whatever triggered them (at most the victim's
  round index t, which it equals when the loss fell after every earlier round).
- Defaults: σ_0 = 1, C = 1 and δ = 10⁻⁵ are DP-SGD's here (FedLeak's values, set from its ε via
  [17], are lost from our copy), so that ``decayed_rounds = 0`` is exactly the ``dpsgd`` defense;
  β = 0.999 is the example a public re-implementation's specification gives for the paper's
  decay factor (unverified).
- The noise goes on the clipped sum, then is divided by b, as Abadi et al. (and :mod:`.dpsgd`);
  one secondary source puts N(0, σ_t²(C_t^k)² I) on the average instead (b times more noise),
  and contradicts itself in the next sentence: unverified.
- As for DP-SGD, the accountant assumes Poisson sampling while the mini-batches are fixed, so the
  reported ε is nominal; Theorem 1's composition over all rounds is not reported, only the
  victim's round.
"""

from __future__ import annotations

import torch

from evalgrid.defenses import accountant
from evalgrid.defenses.base import ClientSide, Defense, with_gradients
from evalgrid.defenses.options import AdaptiveDPOptions
from evalgrid.fl.local_training import PrivateGradients
from evalgrid.fl.threat_model import LocalTraining, SharedUpdate


class AdaptiveDP(Defense):
    """DP-SGD in the local training at the round's decayed noise multiplier and clip bound."""

    def __init__(self, options: AdaptiveDPOptions):
        self.options = options

    @property
    def noise_multiplier(self) -> float:
        """σ_t = σ_0·β^d: the noise multiplier after d decays."""
        return self.options.noise_multiplier * self.options.decay_rate ** self.options.decayed_rounds

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        return with_gradients(update, update.gradients)  # the noise went in during local training

    def private_gradients(self, generator: torch.Generator) -> PrivateGradients:
        return PrivateGradients(self.options.clip_norm, self.noise_multiplier, generator)

    def epsilon(self, training: LocalTraining, num_samples: int) -> float:
        sample_rate = min(1.0, training.minibatch_size / num_samples)
        return accountant.epsilon(self.noise_multiplier, sample_rate, training.steps, self.options.delta)


def build(options: AdaptiveDPOptions) -> AdaptiveDP:
    return AdaptiveDP(options)
