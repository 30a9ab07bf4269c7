"""The DCGAN prior (Radford et al. 2016) of GIA-L (Jeon et al. 2021) and GGL (Li et al. 2022):
a generator G: z ~ N(0, I_latent) → image, trained adversarially on the auxiliary images.

The generator is DCGAN's: ``main`` = a 4×4 transposed convolution of z, stride-2 transposed
convolutions halving the channels and doubling the side up to the image side 4·2^k, each but
the last followed by BatchNorm and ReLU, and tanh. The CIFAR-10 generator GIAS loads
(``inversefed/genmodels/cifar10_dcgan``, csinva's pretrained ``netG_epoch_199.pth``) ends
instead with one more BatchNorm/ReLU at full size and a 1×1 transposed convolution: built with
``pointwise_head`` (the checkpoint prior's default), its layer names are those of the official
weights, which therefore load. Output in [-1, 1] maps to pixels as (G(z) + 1)/2 (GIAS's
``gen_dummy_data``). The discriminator mirrors it (stride-2 4×4 convolutions with LeakyReLU(0.2),
BatchNorm after the first, a 4×4 convolution to one logit). Training: the non-saturating GAN
loss (DCGAN's binary cross-entropy, real label 1, fake 0, the generator trained to make D say 1),
Adam(lr, β1), weights N(0, 0.02) and BatchNorm scales N(1, 0.02).

Departures:
- evalgrid trains the DCGAN ending, not the 1×1 one: trained from scratch on 16×16 digits the
  1×1 ending collapsed to a constant image (generated s.d. 0.004 after 300 steps, where the
  DCGAN ending reached 0.49 against the data's 0.64, same seed and optimiser; FIDELITY.md).
- The discriminator returns a logit and the loss is ``binary_cross_entropy_with_logits``,
  DCGAN's sigmoid + BCE computed stably (the same function).
- Any side 4·2^k is built by the same rule (Radford et al. give 64×64).
- Training is resumable: every draw comes from one ``torch.Generator`` whose state is saved with
  the networks and optimisers, so a resumed training ends in the same weights as an
  uninterrupted one on the same device.
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
from evalgrid.priors.options import DCGANCheckpointOptions, DCGANOptions

SAVE_EVERY_S = 60.0  # a training's progress is saved at least this often (and at the end)


def upsamplings(side: int) -> int | None:
    """k with side = 4·2^k (k >= 1), or None when the side has no such form."""
    k = round(math.log2(side / 4)) if side >= 8 else 0
    return k if k >= 1 and 4 * 2 ** k == side else None


def check_side(side: int) -> None:
    if upsamplings(side) is None:
        raise UserError(f"the DCGAN prior makes square images of side 4·2^k (8, 16, 32, 64, ...); the victims' "
                        f"images are {side}x{side}: set the grid's resolution factor to one of those sides.")


class Generator(nn.Module):
    """z (B, latent) or (B, latent, 1, 1) → images (B, C, side, side) in [-1, 1].

    ``pointwise_head = False`` (DCGAN's): a 4×4 map of ``width·2^(k-1)`` channels, k-1 halving
    stride-2 upsamplings to ``width``, and a last stride-2 upsampling to the image channels.
    ``pointwise_head = True`` (the CIFAR-10 generator GIAS loads): ``width·2^k`` channels at 4×4,
    k halving upsamplings to ``width``, then a 1×1 transposed convolution to the channels."""

    def __init__(self, latent: int, width: int, channels: int, side: int, pointwise_head: bool = False):
        super().__init__()
        check_side(side)
        top = upsamplings(side) - (0 if pointwise_head else 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent, width * 2 ** top, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(width * 2 ** top), nn.ReLU(True)]
        for level in range(top, 0, -1):
            layers += [nn.ConvTranspose2d(width * 2 ** level, width * 2 ** (level - 1), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width * 2 ** (level - 1)), nn.ReLU(True)]
        head = (nn.ConvTranspose2d(width, channels, 1, 1, 0, bias=False) if pointwise_head
                else nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False))
        self.main = nn.Sequential(*layers, head, nn.Tanh())
        self.latent = latent

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z.reshape(z.shape[0], self.latent, 1, 1))


class Discriminator(nn.Module):
    """images (B, C, side, side) in [-1, 1] → one logit each (B,)."""

    def __init__(self, width: int, channels: int, side: int):
        super().__init__()
        k = upsamplings(side)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for level in range(1, k):
            layers += [nn.Conv2d(width * 2 ** (level - 1), width * 2 ** level, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width * 2 ** level), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(width * 2 ** (k - 1), 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.main(images).reshape(-1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolutions N(0, 0.02), BatchNorm scale N(1, 0.02) and shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build(options: DCGANOptions | DCGANCheckpointOptions, info: DatasetInfo) -> Generator:
    return Generator(options.latent, options.width, info.channels, info.resolution,
                     getattr(options, "pointwise_head", False))


def preflight(options: DCGANOptions | DCGANCheckpointOptions, info: DatasetInfo) -> None:
    check_side(info.resolution)


def train(options: DCGANOptions, generator: Generator, images: Tensor, saved: dict[str, Any] | None,
          save: Callable[[dict[str, Any]], None], device: torch.device) -> dict[str, Any]:
    """Fit ``generator`` on ``images`` ((N, C, side, side) in [0, 1]) for ``options.epochs``
    epochs, from ``saved`` (a state ``save`` was given) when resuming; ``save`` receives the
    whole state at least every :data:`SAVE_EVERY_S` seconds. Returns the training's summary."""
    _, channels, side, _ = images.shape
    draw = torch.Generator().manual_seed(options.seed)
    discriminator = Discriminator(options.width, channels, side)
    with torch.random.fork_rng(devices=[]):  # the initialisation draws from torch's global stream
        torch.manual_seed(options.seed)
        generator.apply(dcgan_init)
        discriminator.apply(dcgan_init)
    generator.to(device).train()
    discriminator.to(device).train()
    betas = (options.beta1, 0.999)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=options.lr, betas=betas)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=options.lr, betas=betas)
    epoch, losses = 0, {"discriminator": math.nan, "generator": math.nan}
    if saved is not None:
        generator.load_state_dict(saved["generator"])
        discriminator.load_state_dict(saved["discriminator"])
        g_optimizer.load_state_dict(saved["g_optimizer"])
        d_optimizer.load_state_dict(saved["d_optimizer"])
        draw.set_state(saved["draw"])
        epoch, losses = saved["epoch"], saved["losses"]
    real = images.to(device) * 2 - 1
    last_save = time.monotonic()

    def state() -> dict[str, Any]:
        return {"generator": _cpu(generator.state_dict()), "discriminator": _cpu(discriminator.state_dict()),
                "g_optimizer": g_optimizer.state_dict(), "d_optimizer": d_optimizer.state_dict(),
                "draw": draw.get_state(), "epoch": epoch, "losses": _numbers(losses)}

    while epoch < options.epochs:
        order = torch.randperm(len(real), generator=draw)
        for start in range(0, len(real), options.batch_size):
            batch = real[order[start:start + options.batch_size]]
            noise = torch.randn(len(batch), options.latent, generator=draw).to(device)
            losses = _gan_step(generator, discriminator, g_optimizer, d_optimizer, batch, noise)
        epoch += 1
        if time.monotonic() - last_save >= SAVE_EVERY_S and epoch < options.epochs:
            save(state())
            last_save = time.monotonic()
    generator.eval()
    return {"epochs": epoch, "images": len(real), "final_losses": _numbers(losses)}


def _numbers(losses: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in losses.items()}


def _gan_step(generator: Generator, discriminator: Discriminator, g_optimizer: torch.optim.Optimizer,
              d_optimizer: torch.optim.Optimizer, batch: Tensor, noise: Tensor) -> dict[str, Tensor]:
    """One DCGAN update: D on real (label 1) and fake (label 0) images, then G towards D's 1."""
    fake = generator(noise)
    d_optimizer.zero_grad()
    real_logits, fake_logits = discriminator(batch), discriminator(fake.detach())
    d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad()
    logits = discriminator(fake)
    g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    g_loss.backward()
    g_optimizer.step()
    return {"discriminator": d_loss.detach(), "generator": g_loss.detach()}


def _cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in state.items()}


def load(options: DCGANCheckpointOptions, generator: Generator) -> Generator:
    """The generator with the checkpoint's weights, loaded strictly (every key and shape)."""
    generator.load_state_dict(_checkpoint_state(options, generator), strict=True)
    return generator.eval()


def preflight_checkpoint(options: DCGANCheckpointOptions, info: DatasetInfo) -> None:
    """The file exists, loads with weights_only=True, and fits the generator its options build."""
    check_side(info.resolution)
    _checkpoint_state(options, build(options, info))


def _checkpoint_state(options: DCGANCheckpointOptions, generator: Generator) -> Any:
    from pathlib import Path

    from evalgrid.models.init import fitting_state

    if not options.path:
        raise UserError("prior 'dcgan_checkpoint' needs the option path: the file of a saved generator state "
                        "dict, e.g. prior = [{ name = \"dcgan_checkpoint\", path = \"weights/netG_epoch_199.pth\" }].")
    return fitting_state(Path(options.path), generator, f"dcgan(latent={options.latent}, width={options.width})",
                         who="prior 'dcgan_checkpoint'")
