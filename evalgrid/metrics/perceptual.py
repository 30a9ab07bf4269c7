"""LPIPS (Zhang et al. 2018) through the ``lpips`` package: AlexNet trunk, version 0.1.

The network is built once per process, device and weights file. Its AlexNet trunk loads
torchvision's ImageNet weights from torch's cache; torch would download them when missing,
so :func:`lpips` checks the file first and raises a UserError instead (see
:mod:`evalgrid.models.weights`). The linear calibration layers ship inside the ``lpips`` package.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn

from evalgrid.metrics.entries import LPIPS_MIN_SIZE, LPIPS_WEIGHTS
from evalgrid.models.weights import require_weights, weights_path



def lpips(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """(B,) LPIPS distance of pixels in [0, 1]; grayscale is repeated to three channels.

    Computed on the originals' device, without gradients. Lower is more similar.
    """
    if originals.dim() != 4 or originals.shape != reconstructions.shape:
        raise ValueError(f"expected two (B, C, H, W) batches of the same shape, got "
                         f"{tuple(originals.shape)} and {tuple(reconstructions.shape)}")
    if min(originals.shape[-2:]) < LPIPS_MIN_SIZE:
        raise ValueError(f"LPIPS (AlexNet) needs images of at least {LPIPS_MIN_SIZE}×{LPIPS_MIN_SIZE} "
                         f"pixels, got {originals.shape[-2]}×{originals.shape[-1]}")
    require_weights(LPIPS_WEIGHTS)
    network = lpips_network(originals.device)
    with torch.no_grad():
        distances = network(_to_lpips_input(originals), _to_lpips_input(reconstructions.to(originals)))
    return distances.flatten().float()


def lpips_network(device: torch.device | str = "cpu") -> nn.Module:
    """The cached LPIPS network on ``device`` (built on first use; the weights must be present)."""
    return _build_network(str(torch.device(device)), str(weights_path("alexnet")))


@functools.cache
def _build_network(device: str, alexnet_file: str) -> nn.Module:
    # ``alexnet_file`` is only a cache key: a different torch cache gets a network of its own.
    import lpips as lpips_package

    with warnings.catch_warnings():
        # lpips still calls torchvision.models.alexnet(pretrained=True), which is deprecated.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models")
        network = lpips_package.LPIPS(net="alex", version="0.1", verbose=False)
    return network.eval().requires_grad_(False).to(device)


def clear_lpips_cache() -> None:
    """Forget the built networks (tests that swap torch's cache folder call this)."""
    _build_network.cache_clear()


def _to_lpips_input(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] → [-1, 1] with three channels, as LPIPS expects."""
    pixels = pixels.float()
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    return pixels * 2 - 1
