"""What a defense is: a post-processing of the client's shared update (SoK Sec. 6, FedLeak
Sec. 6.4), run on the client's side with what the client has. Two defenses act elsewhere and
say so through attributes: DP-SGD changes the local training itself (``private_gradients``),
secure aggregation changes what the server sees (``aggregated_clients``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from evalgrid.fl.local_training import PrivateGradients
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.fl.threat_model import ClientData, Normalization, SharedUpdate


@dataclass(frozen=True)
class ClientSide:
    """What a defense may use: everything the client has. Never reaches the attacker."""

    model: nn.Module  # the global model W_0 as received (the client's copy; do not modify it)
    data: ClientData  # the client's private samples (pixels in [0, 1])
    normalization: Normalization  # to turn pixels into model inputs
    training: LocalTraining  # the client's local training
    generator: torch.Generator  # CPU generator for the defense's randomness (same on any device)


class Defense:
    """Base class: ``apply`` transforms the update; the attributes below default to 'no effect'."""

    aggregated_clients: int = 1  # secure aggregation: the server sees the mean of this many clients

    def __repr__(self) -> str:
        options = getattr(self, "options", None)
        return f"{type(self).__name__}({options!r})" if options is not None else f"{type(self).__name__}()"

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        raise NotImplementedError

    def private_gradients(self, generator: torch.Generator) -> PrivateGradients | None:
        """DP-SGD: the per-sample clipping and noise the local training must use."""
        return None

    def epsilon(self, training: LocalTraining, num_samples: int) -> float | None:
        """The (ε, δ) guarantee's ε of this defense for one local training, when it has one."""
        return None


def fraction_count(fraction: float, total: int) -> int:
    """⌈fraction·total⌉ elements, the rule every defense that keeps or prunes a fraction uses.
    Rounded to 9 decimals first so that float noise (0.1·30 = 3.0000000000000004) does not
    add an element."""
    return max(0, min(total, math.ceil(round(fraction * total, 9))))


def largest(values: torch.Tensor, count: int) -> torch.Tensor:
    """A boolean mask, shaped like ``values``, of its ``count`` largest entries; ties go to
    the lower flat index (a stable sort), so the choice never depends on the device."""
    flat = values.reshape(-1)
    chosen = torch.sort(flat, descending=True, stable=True).indices[:count]
    mask = torch.zeros(flat.shape, dtype=torch.bool, device=flat.device)
    mask[chosen] = True
    return mask.view(values.shape)


def smallest(values: torch.Tensor, count: int) -> torch.Tensor:
    """A boolean mask of the ``count`` smallest entries of ``values``; ties to the lower index."""
    flat = values.reshape(-1)
    chosen = torch.sort(flat, stable=True).indices[:count]
    mask = torch.zeros(flat.shape, dtype=torch.bool, device=flat.device)
    mask[chosen] = True
    return mask.view(values.shape)


def standard_normal(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1) draws shaped like ``like``, drawn on the CPU generator then moved to its device."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)


def uniform(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """U[0, 1) draws shaped like ``like``, drawn on the CPU generator then moved to its device."""
    return torch.rand(like.shape, generator=generator, dtype=like.dtype).to(like.device)


def with_gradients(update: SharedUpdate, gradients: Iterable[torch.Tensor]) -> SharedUpdate:
    """A new update carrying ``gradients``; the sample count and BN statistics are kept."""
    return SharedUpdate(tuple(gradients), update.num_samples, update.bn_statistics)
