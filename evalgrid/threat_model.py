"""The threat-model boundary: what crosses from the client to the server (and attacker).

The client keeps :class:`ClientData`. The attacker receives a :class:`ServerView` and
nothing else: the model it sent, the shared update, and public facts (data shape,
classes, normalisation). Labels cross only when the grid's ``labels = "known"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


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


@dataclass(frozen=True)
class SharedUpdate:
    """What the client sends in FedSGD: the gradient of its mean loss, one tensor per
    trainable parameter in ``model.named_parameters()`` order, and its sample count."""

    gradients: tuple[torch.Tensor, ...]
    num_samples: int


@dataclass(frozen=True)
class ServerView:
    """Everything the attacker knows. Attacks receive this and nothing else."""

    model: nn.Module  # the attacker's own copy of the global model, in the client's train/eval mode
    update: SharedUpdate
    data_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    normalization: Normalization
    known_labels: torch.Tensor | None  # the true labels, only when the threat model grants them

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
