"""Whether a batch can pass through a model at all, checked before any cell runs (by
:mod:`evalgrid.launch.preflight`), so that a grid asking for e.g. one image where BatchNorm meets a
1×1 feature map fails at plan rather than in every cell."""

from __future__ import annotations

from typing import Any

import torch

from evalgrid.catalogue import MODELS
from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError

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
