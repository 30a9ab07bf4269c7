"""The threat-model boundary: what crosses from the client to the server (and attacker).

The client keeps :class:`ClientData`. The attacker receives a :class:`ServerView` and
nothing else: the model it sent, the shared update, and public facts (data shape,
classes, normalisation). Labels cross only when the grid's ``labels = "known"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from evalgrid.fl.options import BatchNormMode



@dataclass(frozen=True)
class Normalization:
    """Per-channel mean/std the model's inputs are normalised with (public dataset statistics)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _shape(self, values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] → model input space."""
        return (images - self._shape(self.mean, images)) / self._shape(self.std, images)

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model input space → pixels (not clamped)."""
        return inputs * self._shape(self.std, inputs) + self._shape(self.mean, inputs)

    def pixel_box(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds of the input space that correspond to pixels in [0, 1] (for box constraints)."""
        low = (0 - self._shape(self.mean, like)) / self._shape(self.std, like)
        high = (1 - self._shape(self.mean, like)) / self._shape(self.std, like)
        return low, high


BatchNormStatistics = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # (mean, var) per BN layer, module order


@dataclass(frozen=True)
class SharedUpdate:
    """What the client sends, in gradient units: one tensor per trainable parameter in
    ``model.parameters()`` order. FedSGD sends the gradient of its mean loss; FedAvg sends
    its new weights W_U, which the server turns into the pseudo-gradient (W_0 − W_U) / lr
    (= the sum of the U mini-batch gradients; exactly the gradient when U = 1).
    ``num_samples`` is how many private samples went into it (N, or K·N after secure
    aggregation); ``bn_statistics`` are the batch mean and (biased) variance the client
    saw at each BatchNorm layer, sent only when the FL protocol shares them."""

    gradients: tuple[torch.Tensor, ...]
    num_samples: int
    bn_statistics: BatchNormStatistics | None = None


@dataclass(frozen=True)
class LocalTraining:
    """The client's local training for N samples, resolved from the grid's options."""

    algorithm: Literal["fedsgd", "fedavg"]
    steps: int  # U
    minibatch_size: int  # b, 1 ≤ b ≤ N
    lr: float  # η (FedSGD: unused)
    bn_mode: BatchNormMode  # the model's mode while the client computes its update
    share_bn_statistics: bool  # the update carries the BN layers' batch statistics

    def is_single_gradient(self, num_samples: int) -> bool:
        return self.steps == 1 and self.minibatch_size >= num_samples

    def chunks(self, num_samples: int) -> list[slice]:
        """The consecutive mini-batches of one epoch (the last may be shorter)."""
        return [slice(start, min(start + self.minibatch_size, num_samples))
                for start in range(0, num_samples, self.minibatch_size)]

    def step_batches(self, num_samples: int) -> list[slice]:
        """The mini-batch of every local step."""
        chunks = self.chunks(num_samples)
        return [chunks[step % len(chunks)] for step in range(self.steps)]

    def assumed_by_uninformed_attacker(self, num_samples: int) -> LocalTraining:
        """SoK's BST: without the configuration the attacker assumes one full-batch gradient
        step (B = N, U = 1); it still sees the model's mode (the server sends the model)."""
        return LocalTraining("fedsgd", 1, num_samples, 1.0, self.bn_mode, self.share_bn_statistics)


@dataclass(frozen=True)
class ServerView:
    """Everything the attacker knows. Attacks receive this and nothing else."""

    model: nn.Module  # the attacker's own copy of the global model, in the client's train/eval mode
    update: SharedUpdate
    data_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    normalization: Normalization
    known_labels: torch.Tensor | None  # the true labels, only when the threat model grants them
    # The client's local training as the attacker believes it: the true configuration when
    # the grid's knows_local_config is true (SoK's worst case, WST), else one full-batch
    # gradient step (best case, BST).
    local_training: LocalTraining | None = None  # None: FedSGD, one full-batch gradient
    # Indices (into the trainable parameters) of the gradients the attack may match; None = all.
    # The SoK's Table 3 restricts the attacker to one inception block's gradients.
    gradient_selection: tuple[int, ...] | None = None
    # The adversary's own generative prior (GIA-L's generator, ...), trained on auxiliary data
    # disjoint from the victims (evalgrid/priors); None for the attacks that take none.
    prior: nn.Module | None = None

    @property
    def batch_size(self) -> int:
        return self.update.num_samples


@dataclass(frozen=True)
class ClientData:
    """The victim's private batch, kept by the client; used only to score the attack."""

    images: torch.Tensor  # (B, C, H, W), pixels in [0, 1]
    labels: torch.Tensor  # (B,) int64


@dataclass(frozen=True)
class Reconstruction:
    """An attack's output."""

    images: torch.Tensor  # (B, C, H, W) in the model's input space (normalised)
    labels: torch.Tensor  # (B,) the labels the attack used or recovered
    iterations: int  # optimiser steps taken, summed over restarts
    final_loss: float  # gradient-matching loss of the returned images
    # Each term of the attack's objective, weighted as it enters the loss: (at the first step's
    # images, at the returned images). Shows a term too small to matter, or one that swamps the rest.
    loss_terms: Mapping[str, tuple[float, float]] = field(default_factory=dict)
