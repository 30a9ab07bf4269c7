"""OUTPOST (Wang, Hugh & Li, "More than Enough is Too Much: Adaptive Defenses against Gradient
Leakage in Production Federated Learning", INFOCOM 2023 / IEEE/ACM ToN 2024), FedLeak's [47].

At local iteration t the client perturbs its gradient with probability 1/(1 + β·t)
(iteration-based decay). A perturbation, per the paper and its Plato code:
1. risk of layer l, from the spread of its weights: ρ_l = min(Var(W_l), 1);
2. the diagonal empirical Fisher information F = g ⊙ g; the fraction φ of coordinates with the
   largest F over the whole model is selected;
3. pruning: in every layer the ⌈prune_ratio·n_l⌉ coordinates of smallest |g| are set to 0;
4. noise N(0, (ρ_l · noise_base)²) is added to the selected coordinates:

    g̃_l = prune(g_l) + 1[F_l in the top φ] ⊙ N(0, (ρ_l·noise_base)² I).

Defaults are the official configuration (Plato, examples/gradient_leakage_attacks): β = 0.125,
φ = 40 %, prune 80 %, noise_base = 0.8. FedLeak's Fig. 4 sweeps the pruning ratio.

What is not exact:
- OUTPOST acts on every local step's gradient. A defense here post-processes the shared update
  once, as the perturbation at iteration ``iteration`` (the code counts t = epoch·(batch + 1)
  from epoch 1, so the first step is t = 1, perturbed with probability 1/(1 + β) ≈ 0.89). For
  FedSGD and one FedAvg step this is exact; for U > 1 steps the summed update is perturbed once.
  There is one round per cell, so t is an option rather than a counter.
- The code computes F as g².mean(0), averaging over the leading (output) dimension of each
  tensor; we use the element-wise diagonal g², the Fisher approximation the paper names.
- Var is the unbiased variance (torch's, as the code); a one-element tensor has risk 0.
- The code's percentile thresholds (np.percentile, '<') become exact counts: ⌈prune_ratio·n_l⌉
  pruned and ⌈φ·n⌉ selected, ties to the lower index.
- All draws (the Bernoulli trial and the noise) come from the client's generator, not from a
  reseeded global RNG.
"""

from __future__ import annotations

import torch
from torch import Tensor

from evalgrid.defenses.base import (ClientSide, Defense, fraction_count, largest, smallest, standard_normal,
                                    with_gradients)
from evalgrid.defenses.options import OutpostOptions
from evalgrid.fl.threat_model import SharedUpdate


class Outpost(Defense):
    """With probability 1/(1 + β·t): prune small coordinates, add risk-scaled noise where g² is largest."""

    def __init__(self, options: OutpostOptions):
        self.options = options

    @property
    def probability(self) -> float:
        return 1.0 / (1.0 + self.options.beta * self.options.iteration)

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        gradients = [g.detach() for g in update.gradients]
        trial = torch.rand((), generator=client.generator).item()
        if trial >= self.probability:
            return with_gradients(update, (g.clone() for g in gradients))
        risks = layer_risks(client)
        if len(risks) != len(gradients):
            raise ValueError(f"the update has {len(gradients)} tensors, the model {len(risks)} trainable parameters")
        selected = fisher_selection(gradients, self.options.phi)
        out = []
        for gradient, risk, noisy in zip(gradients, risks, selected):
            pruned = smallest(gradient.abs(), fraction_count(self.options.prune_ratio, gradient.numel()))
            kept = torch.where(pruned, torch.zeros_like(gradient), gradient)
            noise = standard_normal(gradient, client.generator) * (risk * self.options.noise_base)
            out.append(kept + torch.where(noisy, noise, torch.zeros_like(noise)))
        return with_gradients(update, out)


def layer_risks(client: ClientSide) -> list[float]:
    """ρ_l = min(Var(W_l), 1) for every trainable parameter of the global model, in order."""
    risks = []
    for parameter in (p for p in client.model.parameters() if p.requires_grad):
        variance = parameter.detach().double().var().item() if parameter.numel() > 1 else 0.0
        risks.append(min(variance, 1.0))
    return risks


def fisher_selection(gradients: list[Tensor], phi: float) -> list[Tensor]:
    """Masks of the ⌈φ·n⌉ coordinates with the largest empirical Fisher information g² over all tensors."""
    fisher = torch.cat([(g.double() ** 2).reshape(-1).to(gradients[0].device) for g in gradients])
    flat = largest(fisher, fraction_count(phi, fisher.numel()))
    return [m.view(g.shape).to(g.device) for m, g in zip(flat.split([g.numel() for g in gradients]), gradients)]


def build(options: OutpostOptions) -> Outpost:
    return Outpost(options)
