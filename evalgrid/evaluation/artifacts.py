"""The reconstruction picture: originals on top, their matched reconstructions below."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

MIN_TILE = 64  # images are upscaled by a whole factor until their shorter side is at least this
GAP = 2  # pixels of background around and between the tiles
BACKGROUND = 255
TEXT = 0


def tile_scale(height: int, width: int) -> int:
    """The nearest-neighbour upscaling factor for images of ``height`` × ``width``."""
    return max(1, math.ceil(MIN_TILE / min(height, width)))


def reconstruction_png(originals: torch.Tensor, reconstructions: torch.Tensor,
                       captions: Sequence[str] | None = None) -> bytes:
    """PNG bytes: ``originals`` (B, C, H, W) in the top row, ``reconstructions`` in the row below,
    column by column (pass them already matched), and ``captions[i]`` under reconstruction i.

    Pixels are in [0, 1] (clamped), C is 1 (grayscale PNG) or 3 (RGB PNG). Captions are
    drawn with PIL's built-in font; keep them short (a caption wider than a tile is cut off).
    """
    if originals.dim() != 4 or originals.shape != reconstructions.shape:
        raise ValueError(f"expected two (B, C, H, W) batches of the same shape, got "
                         f"{tuple(originals.shape)} and {tuple(reconstructions.shape)}")
    batch, channels, height, width = originals.shape
    if channels not in (1, 3):
        raise ValueError(f"can draw grayscale or RGB images, got {channels} channels")
    if captions is not None and len(captions) != batch:
        raise ValueError(f"{len(captions)} captions for {batch} images")
    scale = tile_scale(height, width)
    tile_h, tile_w = height * scale, width * scale
    font = ImageFont.load_default()
    caption_h = font.getbbox("Ag|")[3] + GAP if captions is not None else 0
    mode = "L" if channels == 1 else "RGB"
    background = BACKGROUND if channels == 1 else (BACKGROUND,) * 3
    canvas = Image.new(mode, (batch * tile_w + (batch + 1) * GAP, 2 * tile_h + 3 * GAP + caption_h), background)
    for row, images in enumerate((originals, reconstructions)):
        top = GAP + row * (tile_h + GAP)
        for column, tile in enumerate(_tiles(images, scale, grayscale=channels == 1)):
            canvas.paste(tile, (GAP + column * (tile_w + GAP), top))
    if captions is not None:
        _draw_captions(canvas, captions, font, tile_w, top=2 * tile_h + 3 * GAP, background=background)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] → (B, H, W, C) bytes, rounded to the nearest level."""
    return (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def _tiles(images: torch.Tensor, scale: int, grayscale: bool) -> list[Image.Image]:
    pixels = to_uint8(images).repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    if grayscale:
        pixels = pixels[..., 0]
    return [Image.fromarray(tile.contiguous().numpy()) for tile in pixels]  # 2-D → "L", 3 channels → "RGB"


def _draw_captions(canvas: Image.Image, captions: Sequence[str], font, tile_w: int, top: int,
                   background) -> None:
    fill = TEXT if canvas.mode == "L" else (TEXT,) * 3
    height = canvas.height - top
    for column, caption in enumerate(captions):
        label = Image.new(canvas.mode, (tile_w, height), background)  # clips long captions
        draw = ImageDraw.Draw(label)
        draw.text((max(0, (tile_w - draw.textlength(caption, font=font)) // 2), 0), caption, fill=fill, font=font)
        canvas.paste(label, (GAP + column * (tile_w + GAP), top))
