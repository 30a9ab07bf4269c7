"""Top-k sparsification (the SoK's sparsification, Appendix C.III, after Fu et al. / DGC):
keep the k coordinates of largest magnitude, set the rest to zero,

    g̃_i = g_i if |g_i| is among the k largest, else 0,   k = ⌈keep · n⌉.

The SoK's k is the *proportion kept* and it sweeps 0.6, 0.7, 0.8, 0.9, 0.95. ``scope``
"layer" ranks each tensor on its own (n = its size; the usual per-layer compression),
"global" ranks all coordinates of the update together (n = the model's size). Ties go to the
coordinate that comes first (parameter order, then row-major), so exactly k are kept.
The SoK's sentence (App. C.III): "selecting proportion k ([0.6, 0.7, 0.8, 0.9, 0.95]) greatest
absolute values as significant elements": k is kept. ROG's code (KAI-YUE/rog,
``src/compress/compressor.py``, ``Topk``) takes the opposite parameter, the share *zeroed*
(``sparsity``), and keeps one element fewer than ⌈(1 − sparsity)·n⌉ (a strict ``>`` against the
k-th value): SoK k = 0.6 is ROG sparsity 0.4. Exactly ⌈keep·n⌉ are kept here.
The default ``keep = 0.1`` is the project's choice of a strong setting (ten times sparser
than the SoK's strongest); set the SoK's values in the grid to reproduce its sweep.

``kept = "smallest"`` keeps the ⌈keep·n⌉ coordinates of *smallest* magnitude instead (ties, again,
to the coordinate that comes first): FedLeak Fig. 8's server that observes only the bottom x%
of the update's elements, not a defense anyone deploys.
"""

from __future__ import annotations

import torch

from evalgrid.defenses.base import ClientSide, Defense, fraction_count, largest, smallest, with_gradients
from evalgrid.defenses.options import TopKOptions
from evalgrid.fl.threat_model import SharedUpdate


class TopK(Defense):
    """Zero all but the ⌈keep·n⌉ largest-magnitude (or smallest-magnitude) coordinates, per tensor
    or over the update."""

    def __init__(self, options: TopKOptions):
        self.options = options
        self.choose = largest if options.kept == "largest" else smallest

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        gradients = [g.detach() for g in update.gradients]
        if self.options.scope == "layer":
            masks = [self.choose(g.abs(), fraction_count(self.options.keep, g.numel())) for g in gradients]
        else:
            magnitudes = torch.cat([g.abs().reshape(-1).to(gradients[0].device, torch.float64) for g in gradients])
            flat = self.choose(magnitudes, fraction_count(self.options.keep, magnitudes.numel()))
            masks = [m.view(g.shape).to(g.device) for m, g in zip(flat.split([g.numel() for g in gradients]),
                                                                   gradients)]
        return with_gradients(update, (torch.where(m, g, torch.zeros_like(g)) for g, m in zip(gradients, masks)))


def build(options: TopKOptions) -> TopK:
    return TopK(options)
