"""Per-image PSNR and SSIM on pixels in [0, 1], vectorised over the batch.

Both match scikit-image (``peak_signal_noise_ratio`` and ``structural_similarity`` with
``data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False``), which is
the SSIM of Wang et al. (2004). They are computed in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evalgrid.metrics.entries import SSIM_WINDOW

MSE_FLOOR = 1e-10  # so that an exact copy reads 10·log10(1/1e-10) = 100 dB instead of inf

SSIM_SIGMA = 1.5
SSIM_RADIUS = SSIM_WINDOW // 2  # 5 = int(3.5σ + 0.5): truncated at 3.5σ, as scipy/scikit-image do
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB, 10·log10(1 / MSE), with MSE floored at 1e-10
    (an exact copy scores 100 dB, a finite number that tables can average)."""
    _check_same_shape(originals, reconstructions)
    a, b = originals.double(), reconstructions.to(originals).double()
    mse = (a - b).square().flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(MSE_FLOOR))


def ssim(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """(B,) structural similarity: an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03,
    averaged over the valid (unpadded) region and the channels."""
    _check_same_shape(originals, reconstructions)
    batch, channels, height, width = originals.shape
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels "
                         f"(its Gaussian window), got {height}×{width}")
    x, y = originals.double(), reconstructions.to(originals).double()
    window = _gaussian_window(x.device)
    stacked = torch.cat([x, y, x * x, y * y, x * y]).flatten(0, 1).unsqueeze(1)
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = F.conv2d(stacked, window).view(5, batch, channels, *(
        height - 2 * SSIM_RADIUS, width - 2 * SSIM_RADIUS))
    var_x, var_y, cov_xy = mu_xx - mu_x ** 2, mu_yy - mu_y ** 2, mu_xy - mu_x * mu_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2  # (K·L)² with data range L = 1
    similarity = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return similarity.flatten(1).mean(1)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    offsets = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    taps = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    taps = taps / taps.sum()
    return torch.outer(taps, taps).view(1, 1, SSIM_WINDOW, SSIM_WINDOW)


def _check_same_shape(originals: torch.Tensor, reconstructions: torch.Tensor) -> None:
    if originals.dim() != 4 or originals.shape != reconstructions.shape:
        raise ValueError(f"expected two (B, C, H, W) batches of the same shape, got "
                         f"{tuple(originals.shape)} and {tuple(reconstructions.shape)}")

