"""The refiner prior of ROG (Yue et al., USENIX Security 2023, "Gradient Obfuscation Gives a
False Sense of Security in Federated Learning"): the post-processing network that turns ROG's
coarse reconstruction into the final image.

Architecture: ROG's denoiser (``networks/generator.py`` ``Generator``): a U-Net of instance-
normalised ReLU convolutions, encoder 5×5 (reflection-padded) → three stride-2 3×3 convolutions
(width, 2·, 4·, 8·width channels), decoder three stride-2 4×4 transposed convolutions each
concatenated with the encoder's map of its size, a 3×3 convolution with the input concatenated,
and (tanh + 1)/2: images in [0, 1]. Sides must be multiples of 8, at least 16 (the innermost
instance norm needs more than one value per channel).

Training (ours: ROG ships its networks pretrained and its training code is not public): on the
auxiliary images x, the input is ROG's representation of x, bicubic down- and upsampling by
``downsample``, plus Gaussian noise of s.d. ``noise`` (the attack's residual error), and the loss
is the mean absolute error to x; Adam. Resumable like the DCGAN (one random stream, state saved
at least once a minute).

Departures from ROG, and why:
- ROG post-processes with two pretrained networks averaged, a class-conditional generator
  (conditional BatchNorm on the label, trained with a discriminator) and the denoiser followed
  by USRNet's ×4 super-resolution; evalgrid trains one network, the denoiser's architecture
  without the label, to undo exactly the representation's degradation, with an L1 loss and no
  discriminator. The official weights are for 128×128 ImageNet and not public in a loadable form.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.priors.options import RefinerOptions

SAVE_EVERY_S = 60.0


def _block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.InstanceNorm2d(channels), nn.ReLU())


class Refiner(nn.Module):
    """Coarse images (B, C, H, W) in [0, 1] → refined images in [0, 1]."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        w = width
        self.pad = nn.ReflectionPad2d(2)
        self.conv1 = _block(nn.Conv2d(channels, w, 5, 1, 0), w)
        self.conv2 = _block(nn.Conv2d(w, 2 * w, 3, 2, 1), 2 * w)
        self.conv3 = _block(nn.Conv2d(2 * w, 4 * w, 3, 2, 1), 4 * w)
        self.conv4 = _block(nn.Conv2d(4 * w, 8 * w, 3, 2, 1), 8 * w)
        self.up1 = _block(nn.ConvTranspose2d(8 * w, 8 * w, 4, 2, 1), 8 * w)
        self.conv5 = _block(nn.Conv2d(8 * w, 8 * w, 3, 1, 1), 8 * w)
        self.up2 = _block(nn.ConvTranspose2d(12 * w, 12 * w, 4, 2, 1), 12 * w)
        self.conv6 = _block(nn.Conv2d(12 * w, 4 * w, 3, 1, 1), 4 * w)
        self.up3 = _block(nn.ConvTranspose2d(6 * w, 6 * w, 4, 2, 1), 6 * w)
        self.conv7 = _block(nn.Conv2d(6 * w, 2 * w, 3, 1, 1), 2 * w)
        self.conv8 = nn.Conv2d(3 * w, w, 3, 1, 1)
        self.conv9 = nn.Conv2d(channels + w, channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.conv1(self.pad(x))
        x2 = self.conv2(x1)
        x3 = self.conv3(x2)
        x4 = self.conv4(x3)
        y = self.conv5(self.up1(x4))
        y = self.conv6(self.up2(torch.cat((y, x3), 1)))
        y = self.conv7(self.up3(torch.cat((y, x2), 1)))
        y = self.conv8(torch.cat((y, x1), 1))
        y = self.conv9(torch.cat((y, x), 1))
        return (torch.tanh(y) + 1) / 2


def check_side(side: int, downsample: int) -> None:
    if side < 16 or side % 8 or side % downsample:
        raise UserError(f"ROG's refiner needs image sides that are multiples of 8 and of its downsample factor "
                        f"{downsample}; the victims' images are {side}x{side}: set the grid's resolution factor to "
                        f"such a side (16, 32, 64, 128, ...).")


def build(options: RefinerOptions, info: DatasetInfo) -> Refiner:
    return Refiner(info.channels, options.width)


def preflight(options: RefinerOptions, info: DatasetInfo) -> None:
    check_side(info.resolution, options.downsample)


def coarse(images: Tensor, downsample: int) -> Tensor:
    """ROG's representation of ``images``: bicubic downsampling by ``downsample`` and back, clamped."""
    if downsample == 1:
        return images
    side = images.shape[-1]
    low = F.interpolate(images, size=side // downsample, mode="bicubic", align_corners=False, antialias=True)
    return upsample(low, side)


def upsample(low: Tensor, side: int) -> Tensor:
    """The representation's decoder: bicubic upsampling to ``side`` (ROG's F.interpolate)."""
    return F.interpolate(low, size=side, mode="bicubic", align_corners=False).clamp(0, 1)


def train(options: RefinerOptions, refiner: Refiner, images: Tensor, saved: dict[str, Any] | None,
          save: Callable[[dict[str, Any]], None], device: torch.device) -> dict[str, Any]:
    """Fit ``refiner`` to restore ``images`` from their noisy coarse representation."""
    draw = torch.Generator().manual_seed(options.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        for module in refiner.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.reset_parameters()
    refiner.to(device).train()
    optimizer = torch.optim.Adam(refiner.parameters(), lr=options.lr)
    epoch, loss = 0, math.nan
    if saved is not None:
        refiner.load_state_dict(saved["refiner"])
        optimizer.load_state_dict(saved["optimizer"])
        draw.set_state(saved["draw"])
        epoch, loss = saved["epoch"], saved["loss"]
    degraded = coarse(images, options.downsample)
    last_save = time.monotonic()
    while epoch < options.epochs:
        order = torch.randperm(len(images), generator=draw)
        for start in range(0, len(images), options.batch_size):
            index = order[start:start + options.batch_size]
            noise = torch.randn(degraded[index].shape, generator=draw) * options.noise
            inputs = (degraded[index] + noise).clamp(0, 1).to(device)
            optimizer.zero_grad()
            error = (refiner(inputs) - images[index].to(device)).abs().mean()
            error.backward()
            optimizer.step()
            loss = error.detach()
        epoch += 1
        if time.monotonic() - last_save >= SAVE_EVERY_S and epoch < options.epochs:
            save({"refiner": {k: v.detach().cpu().clone() for k, v in refiner.state_dict().items()},
                  "optimizer": optimizer.state_dict(), "draw": draw.get_state(), "epoch": epoch,
                  "loss": float(loss)})
            last_save = time.monotonic()
    refiner.eval()
    return {"epochs": epoch, "images": len(images), "final_l1": float(loss)}
