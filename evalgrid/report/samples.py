"""A done cell's private images and the attacker's matched reconstructions, from its
reconstruction.npz: the trial with the best mean PSNR, each image as a small PNG data URI."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_SAMPLES = 16  # columns shown per cell
MAX_SIDE = 128  # larger images are shrunk to this side before they are embedded
ARTIFACT = "reconstruction.npz"


@dataclass(frozen=True)
class Sample:
    original: str  # data URI
    reconstruction: str  # data URI
    label: int | None  # the true label
    captions: tuple[str, ...]  # shown under the reconstruction: PSNR, LPIPS


@dataclass(frozen=True)
class CellSamples:
    samples: tuple[Sample, ...]
    trial: int  # the trial shown (0-based)
    trials: int
    batch: int  # samples in the batch (more than shown when over MAX_SAMPLES)
    display_size: tuple[int, int]  # (width, height) a tile is drawn at: small images upscaled, pixelated
    problem: str = ""  # why nothing is shown, "" when the images were read


def cell_samples(artifacts: Path, row: Mapping[str, Any]) -> CellSamples:
    """The images of the cell whose result is ``row`` (a results row: per-sample metrics as
    [trial][sample]); a missing or unreadable npz gives a ``problem`` instead."""
    path = artifacts / ARTIFACT
    try:
        with np.load(path) as saved:
            originals, reconstructions = saved["originals"], saved["reconstructions"]
            labels = saved["true_labels"] if "true_labels" in saved.files else None
    except FileNotFoundError:
        return _nothing(f"no {ARTIFACT} in {artifacts}")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        return _nothing(f"{path} could not be read ({type(error).__name__}: {error})")
    if originals.ndim != 4 or reconstructions.ndim != 5 or reconstructions.shape[1:] != originals.shape:
        return _nothing(f"{path}: unexpected shapes {originals.shape} and {reconstructions.shape}")
    psnr, lpips = per_sample(row, "psnr"), per_sample(row, "lpips")
    trial = best_trial(psnr, len(reconstructions))
    shown = range(min(MAX_SAMPLES, len(originals)))
    samples = tuple(Sample(png_data_uri(originals[i]), png_data_uri(reconstructions[trial, i]),
                           None if labels is None else int(labels[i]), captions(psnr, lpips, trial, i))
                    for i in shown)
    return CellSamples(samples, trial, len(reconstructions), len(originals), display_size(*originals.shape[2:]))


def display_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) in CSS pixels: shrunk to MAX_SIDE, then upscaled by evaluation/artifacts.py's whole factor."""
    from evalgrid.evaluation.artifacts import tile_scale

    shrink = min(1.0, MAX_SIDE / max(height, width))
    height, width = max(1, round(height * shrink)), max(1, round(width * shrink))
    scale = tile_scale(height, width)
    return width * scale, height * scale


def per_sample(row: Mapping[str, Any], metric: str) -> list[list[float]]:
    """``metric``_per_sample of a results row as [trial][sample] lists ([] when absent)."""
    values = row.get(f"{metric}_per_sample")
    if values is None:
        return []
    return [[float(v) for v in trial] for trial in values]


def best_trial(psnr: Sequence[Sequence[float]], trials: int) -> int:
    """The trial with the highest mean PSNR (the first when PSNR was not measured)."""
    means = [float(np.mean(t)) if len(t) else -np.inf for t in psnr[:trials]]
    return int(np.argmax(means)) if means else 0


def captions(psnr: Sequence[Sequence[float]], lpips: Sequence[Sequence[float]], trial: int,
             sample: int) -> tuple[str, ...]:
    """'PSNR 12.3 dB' and 'LPIPS 0.412' for one reconstruction, each when measured."""
    shown = []
    if trial < len(psnr) and sample < len(psnr[trial]):
        shown.append(f"PSNR {psnr[trial][sample]:.1f} dB")
    if trial < len(lpips) and sample < len(lpips[trial]):
        shown.append(f"LPIPS {lpips[trial][sample]:.3f}")
    return tuple(shown)


def png_data_uri(image: np.ndarray) -> str:
    """A (C, H, W) image in [0, 1] as a PNG data URI: gray for C = 1, RGB for C = 3."""
    from PIL import Image

    pixels = (np.clip(np.nan_to_num(image.astype(np.float64)), 0, 1) * 255).round().astype(np.uint8)
    picture = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else Image.fromarray(pixels[:3].transpose(1, 2, 0))
    if max(picture.size) > MAX_SIDE:
        picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _nothing(problem: str) -> CellSamples:
    return CellSamples((), 0, 0, 0, (0, 0), problem)
