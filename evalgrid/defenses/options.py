"""The options of every built-in defense, each with the default a grid gets when it names the
defense bare. They live apart from the implementations so that the catalogue, and with it
``plan``, ``status`` and grid validation, can read them without importing torch; each
implementation module imports its class back from here.

A cell's id hashes these fields (name, type, default, metadata): renaming, reordering or
retyping one changes the id of every cell that names the defense.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalgrid.catalogue.options import option


@dataclass(frozen=True)
class QSGDOptions:
    bits: int = option(4, minimum=1, maximum=8,
                       doc="bits per level index: s = 2^bits − 1 levels (SoK sweeps 1, 2, 3, 4)")
    norm: Literal["max", "l2"] = option(
        "max", doc="scale of each bucket: its max |v_i| (QSGD's experiments, ROG) or its L2 norm (QSGD Sec. 3.1)")
    bucket_size: int = option(0, minimum=0,
                              doc="coordinates per bucket, each scaled on its own; 0: one bucket per tensor (ROG)")


@dataclass(frozen=True)
class SignSGDOptions:
    """signSGD has no parameter."""


@dataclass(frozen=True)
class TopKOptions:
    keep: float = option(0.1, positive=True, maximum=1.0,
                         doc="fraction of coordinates kept, k = ⌈keep·n⌉ (SoK sweeps 0.6 to 0.95)")
    scope: Literal["layer", "global"] = option(
        "layer", doc="rank each tensor on its own (layer) or the whole update together (global)")
    kept: Literal["largest", "smallest"] = option(
        "largest", in_id_at_default=False,
        doc="which coordinates are kept: the largest magnitudes (sparsification) or the smallest (FedLeak "
            "Fig. 8's server that sees only the bottom share)")


@dataclass(frozen=True)
class ClippingOptions:
    bound: float = option(0.1, positive=True, doc="C: the largest |coordinate| (value) or the largest L2 norm (norm)")
    mode: Literal["value", "norm"] = option(
        "norm", doc="scale the whole update to L2 norm <= C (norm: flat clipping, McMahan et al.) or clamp "
                    "every coordinate to [-C, C] (value)")


@dataclass(frozen=True)
class GaussianOptions:
    sigma: float = option(0.1, minimum=0.0, doc="σ: standard deviation of the added noise, in gradient units")


@dataclass(frozen=True)
class DPSGDOptions:
    clip_norm: float = option(1.0, positive=True, doc="C: every per-sample gradient is clipped to this L2 norm")
    noise_multiplier: float = option(1.0, minimum=0.0, doc="σ: the noise's std is σ·C on the clipped sum")
    delta: float = option(1e-5, positive=True, maximum=0.1, doc="δ of the reported (ε, δ) guarantee (≪ 1/N)")


@dataclass(frozen=True)
class AdaptiveDPOptions:
    """Adap DP-FL's schedule, at the victim's round: one cell simulates one round, so where the
    round stands in the schedule (how often σ has decayed, this round's clip bound) is given."""

    noise_multiplier: float = option(1.0, minimum=0.0, doc="σ_0: the first round's noise multiplier, before any decay")
    decay_rate: float = option(0.999, positive=True, maximum=1.0,
                               doc="β: the server sets σ ← β·σ after each round its model's validation loss fell")
    decayed_rounds: int = option(0, minimum=0,
                                 doc="d: how many earlier rounds decayed σ, so the victim's σ_t = σ_0·β^d (0: none)")
    clip_norm: float = option(1.0, positive=True,
                              doc="C_t: this round's per-sample clip bound (the paper: the mean L2 norm of the "
                                  "client's noisy gradients of its previous round; C_0 in the first)")
    delta: float = option(1e-5, positive=True, maximum=0.1, doc="δ of the reported (ε, δ) guarantee (≪ 1/N)")


@dataclass(frozen=True)
class SoteriaOptions:
    prune_ratio: float = option(0.5, minimum=0.0, maximum=1.0,
                                doc="fraction of representation features pruned (FedLeak: 0.5)")


@dataclass(frozen=True)
class OutpostOptions:
    prune_ratio: float = option(0.8, minimum=0.0, maximum=1.0,
                                doc="fraction of each layer's smallest-magnitude coordinates zeroed (code: 80 %)")
    phi: float = option(0.4, minimum=0.0, maximum=1.0,
                        doc="fraction of coordinates, by largest Fisher information g², given noise (code: 40 %)")
    noise_base: float = option(0.8, minimum=0.0, doc="noise std = min(Var(W_l), 1) · noise_base (code: 0.8)")
    beta: float = option(0.125, minimum=0.0, doc="decay: perturb with probability 1/(1 + beta·iteration) (code 0.125)")
    iteration: int = option(1, minimum=0, doc="the local iteration t the update stands for (first step: 1)")


@dataclass(frozen=True)
class SecureAggregationOptions:
    clients: int = option(2, minimum=2,
                          doc="K: the server sees the mean update of this many clients (the victim's included)")
