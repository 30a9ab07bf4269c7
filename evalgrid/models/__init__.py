"""Model registry. ``build(options, info: DatasetInfo)`` returns an ``nn.Module`` sized to
the dataset's channels, resolution and classes; its parameters are drawn from torch's
global RNG, which the cell seeds."""

from __future__ import annotations

from evalgrid.models import lenet
from evalgrid.registry import Component, Registry

MODELS: Registry[Component] = Registry("model")
MODELS.register("lenet", Component(
    "lenet", lenet.LeNetOptions, lenet.build, "DLG's LeNet: sigmoid convolutions, U(-0.5, 0.5) weights"))

__all__ = ["MODELS"]
