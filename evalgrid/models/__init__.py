"""Model registry. ``build(options, info: DatasetInfo)`` returns an ``nn.Module`` sized to
the dataset's channels, resolution and classes; its parameters are drawn from torch's
global RNG, which the cell seeds."""

from __future__ import annotations

from functools import partial

from evalgrid.models import convnet, lenet, resnet
from evalgrid.registry import Component, Registry

MODELS: Registry[Component] = Registry("model")
MODELS.register("lenet", Component(
    "lenet", lenet.LeNetOptions, lenet.build, "DLG's LeNet: sigmoid convolutions, U(-0.5, 0.5) weights"))
MODELS.register("convnet", Component(
    "convnet", convnet.ConvNetOptions, convnet.build,
    "Geiping et al.'s ConvNet: eight 3x3 conv+BN+ReLU layers, two max-pools, one linear layer"))
for _name, _architecture in resnet.ARCHITECTURES.items():
    MODELS.register(_name, Component(
        _name, resnet.ResNetOptions, partial(resnet.build, architecture=_name), _architecture.summary))

__all__ = ["MODELS"]
