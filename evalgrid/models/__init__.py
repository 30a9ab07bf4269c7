"""Model registry. ``build(options, info: DatasetInfo)`` returns an ``nn.Module`` sized to
the dataset's channels, resolution and classes; its parameters are drawn from torch's
global RNG, which the cell seeds. A model that cannot take the dataset's resolution raises a
UserError naming its minimum. Every build also works under ``with torch.device("meta"):``.

``INITS`` (the grid factor ``init``) then sets the weights: see :mod:`evalgrid.models.init`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.models import convnet, lenet, resnet, zoo
from evalgrid.models.init import INITS
from evalgrid.registry import Component, Registry

MODELS: Registry[Component] = Registry("model")
MODELS.register("lenet", Component(
    "lenet", lenet.LeNetOptions, lenet.build, "DLG's LeNet: sigmoid convolutions, U(-0.5, 0.5) weights"))
MODELS.register("convnet", Component(
    "convnet", convnet.ConvNetOptions, partial(convnet.build, name="convnet"),
    "Geiping et al.'s ConvNet: eight 3x3 conv+BN+ReLU layers, two max-pools, one linear layer"))
MODELS.register("convnet_sok", Component(
    "convnet_sok", convnet.ConvNetSoKOptions, partial(convnet.build, name="convnet_sok"),
    "the SoK's base ConvNet (Table 4): Geiping's ConvNet with one dropout layer; micro-design options"))
for _name, _architecture in resnet.ARCHITECTURES.items():
    MODELS.register(_name, Component(
        _name, resnet.ResNetOptions, partial(resnet.build, architecture=_name), _architecture.summary))
for _name, _entry in zoo.ZOO.items():
    MODELS.register(_name, Component(_name, _entry.options, partial(zoo.build, name=_name), _entry.summary))


# Below this many parameters a model is built for real to check a batch (tens of ms); above it
# the check runs on the meta device, whose first forward imports torch's symbolic-shape
# machinery (~2 s) but which costs no initialisation (VGG-16: 138 M weights, ~1.5 s).
CPU_CHECK_MAX_PARAMETERS = 20_000_000


def check_batch_fits(model_name: str, model_options: Any, info: DatasetInfo, batch_size: int) -> None:
    """Raise a UserError when a batch of ``batch_size`` of ``info``'s images cannot pass through
    the model in train mode (e.g. one image where BatchNorm meets a 1×1 feature map).

    One no-grad forward of at most two images (beyond two, the batch size changes nothing that
    can fail: BatchNorm needs more than one value per channel), on the CPU for a small model (its
    weights drawn without touching torch's global RNG) or on the meta device for a large one."""
    with torch.device("meta"):
        model = MODELS[model_name].build(model_options, info)
    device = "meta"
    if sum(p.numel() for p in model.parameters()) <= CPU_CHECK_MAX_PARAMETERS:
        with torch.random.fork_rng(devices=[]):
            model = MODELS[model_name].build(model_options, info)
        device = "cpu"
    images = torch.zeros(min(batch_size, 2), info.channels, info.resolution, info.resolution, device=device)
    try:
        with torch.no_grad():
            model.train()(images)
    except (RuntimeError, ValueError) as error:
        raise UserError(f"model {model_name!r} cannot take a batch of {batch_size} images of "
                        f"{info.resolution}×{info.resolution} in training mode: {error}") from None


__all__ = ["INITS", "MODELS", "check_batch_fits"]
