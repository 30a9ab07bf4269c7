"""The attack problems the attack benchmarks share: a model at 32×32 with 3 channels and 10
classes, a victim batch of real images (scikit-learn's digits, upsampled and repeated over
the three channels), the client's FedSGD gradient, and the attacker's ServerView of it."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from evalgrid.catalogue import ATTACKS
from evalgrid.data.base import DatasetInfo
from evalgrid.fl.local_training import local_update
from evalgrid.catalogue import LOCAL_TRAININGS
from evalgrid.catalogue import MODELS
from evalgrid.catalogue.options import parse_options
from evalgrid.fl.threat_model import Normalization, ServerView, SharedUpdate

SIDE = 32
NORMALIZATION = Normalization(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
INFO = DatasetInfo("digits-rgb", channels=3, resolution=SIDE, num_classes=10, normalization=NORMALIZATION)


@dataclass(frozen=True)
class Case:
    """One benchmark problem: a model of the zoo at a batch size; ``options`` overrides the
    model's preset (e.g. ``(("width", 4),)`` for the tiny models of a dry run)."""

    model: str
    batch_size: int
    options: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        written = ", ".join(f"{name}={value}" for name, value in self.options)
        return f"{self.model}{f'({written})' if written else ''} b{self.batch_size}"


CASES = (Case("convnet", 1), Case("convnet", 8), Case("resnet18", 4))


@dataclass(frozen=True, eq=False)
class Problem:
    """A victim's batch (pixels in [0, 1]), its labels, the global model and the attacker's view."""

    model: nn.Module
    pixels: torch.Tensor
    labels: torch.Tensor
    view: ServerView


def victim_batch(batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    chosen = torch.randperm(len(digits.target), generator=torch.Generator().manual_seed(seed))[:batch_size]
    small = torch.from_numpy(digits.images[chosen.numpy()] / 16.0).float().unsqueeze(1)
    pixels = torch.nn.functional.interpolate(small, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    return pixels.clamp(0, 1).repeat(1, 3, 1, 1), torch.from_numpy(digits.target[chosen.numpy()]).long()


def problem(case: Case, seed: int = 0, device: str = "cpu") -> Problem:
    """The model (seeded init, train mode as FedSGD clients run it), the batch and the view with known labels."""
    torch.manual_seed(seed)
    component = MODELS[case.model]
    model = component.build(parse_options(component.options, dict(case.options)), INFO).to(device).train()
    pixels, labels = victim_batch(case.batch_size, seed)
    pixels, labels = pixels.to(device), labels.to(device)
    training = LOCAL_TRAININGS["fedsgd"].build(LOCAL_TRAININGS["fedsgd"].options(), case.batch_size)
    gradients = tuple(g.detach() for g in local_update(model, NORMALIZATION.normalize(pixels), labels, training))
    view = ServerView(model=copy.deepcopy(model), update=SharedUpdate(gradients, case.batch_size),
                      data_shape=(3, SIDE, SIDE), num_classes=10, normalization=NORMALIZATION,
                      known_labels=labels.clone(), local_training=training)
    return Problem(model, pixels, labels, view)


def build_attack(name: str, **overrides):
    component = ATTACKS[name]
    return component.build(parse_options(component.options, overrides))


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seconds_per_step(step, steps: int, device: str) -> float:
    """Wall seconds per call of ``step`` over ``steps`` calls, the device synchronised around them."""
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - started) / steps
