"""The reconstruction picture: originals on top, their matched reconstructions below, and a
title band saying which cell it is and which row is which."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

if TYPE_CHECKING:
    from evalgrid.grid.cell import CellConfig

MIN_TILE = 64  # images are upscaled by a whole factor until their shorter side is at least this
GAP = 2  # pixels of background around and between the tiles
BACKGROUND = 255
TEXT = 0
TITLE_MIN_WIDTH = 320  # pixels: a picture with a title is at least this wide (about 55 characters a line)
DESCRIPTION = "Description"  # the PNG text chunk that holds the title
# The factors a picture's title names: those that tell most cells of a grid apart.
TITLE_FACTORS = ("dataset", "model", "attack", "batch_size", "defense", "labels", "seed")


def tile_scale(height: int, width: int) -> int:
    """The nearest-neighbour upscaling factor for images of ``height`` × ``width``."""
    return max(1, math.ceil(MIN_TILE / min(height, width)))


def reconstruction_png(originals: torch.Tensor, reconstructions: torch.Tensor,
                       captions: Sequence[str] | None = None, title: str | None = None) -> bytes:
    """PNG bytes: ``originals`` (B, C, H, W) in the top row, ``reconstructions`` in the row below,
    column by column (pass them already matched), ``captions[i]`` under reconstruction i, and
    ``title`` (lines of text, e.g. :func:`picture_title`) in a band at the bottom.

    Pixels are in [0, 1] (clamped), C is 1 (grayscale PNG) or 3 (RGB PNG). Text is drawn with
    PIL's built-in font. Keep captions short (a caption wider than a tile is cut off); the title
    wraps to the picture's width, which grows to :data:`TITLE_MIN_WIDTH` for it, and is also
    stored as the PNG's "Description" text, for programs that read it.
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
    line_h = font.getbbox("Ag|")[3] + GAP
    caption_h = line_h if captions is not None else 0
    tiles_w, tiles_h = batch * tile_w + (batch + 1) * GAP, 2 * tile_h + 3 * GAP
    canvas_w = max(tiles_w, TITLE_MIN_WIDTH) if title else tiles_w
    title_lines = wrap_text(title, font, canvas_w - 2 * GAP) if title else []
    title_h = len(title_lines) * line_h + GAP if title_lines else 0
    mode = "L" if channels == 1 else "RGB"
    background = BACKGROUND if channels == 1 else (BACKGROUND,) * 3
    canvas = Image.new(mode, (canvas_w, tiles_h + caption_h + title_h), background)
    for row, images in enumerate((originals, reconstructions)):
        top = GAP + row * (tile_h + GAP)
        for column, tile in enumerate(_tiles(images, scale, grayscale=channels == 1)):
            canvas.paste(tile, (GAP + column * (tile_w + GAP), top))
    if captions is not None:
        _draw_captions(canvas, captions, font, tile_w, top=tiles_h, height=caption_h, background=background)
    draw = ImageDraw.Draw(canvas)
    for index, line in enumerate(title_lines):
        draw.text((GAP, tiles_h + caption_h + GAP + index * line_h), line, fill=_text_fill(canvas), font=font)
    metadata = None
    if title:
        metadata = PngInfo()
        metadata.add_text(DESCRIPTION, title)  # latin-1 as tEXt, else PIL writes an iTXt chunk
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", pnginfo=metadata)
    return buffer.getvalue()


def picture_title(cell: CellConfig, trial: int, trials: int, chosen_by: str) -> str:
    """The title of a cell's picture: its id and main factors, then which row is which
    (``trial`` counts from 0; ``chosen_by`` says why it is the trial shown, e.g. "best PSNR")."""
    labels = cell.factor_labels()
    factors = ", ".join(f"{name} {labels[name]}" for name in TITLE_FACTORS)
    return (f"cell {cell.cell_id}: {factors}\n"
            f"top: originals (private); bottom: reconstructions (trial {trial + 1} of {trials}, {chosen_by})")


def wrap_text(text: str, font, width: int) -> list[str]:
    """``text``'s lines broken at spaces (inside a word, if it alone is too wide) to fit ``width`` pixels."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > width:
                lines.append(line)
                candidate = word
            while len(candidate) > 1 and font.getlength(candidate) > width:
                fit = _fitting_prefix(candidate, font, width)
                lines.append(candidate[:fit])
                candidate = candidate[fit:]
            line = candidate
        lines.append(line)
    return lines


def _fitting_prefix(word: str, font, width: int) -> int:
    """How many leading characters of ``word`` fit in ``width`` pixels (at least one)."""
    fit = 1
    while fit < len(word) and font.getlength(word[:fit + 1]) <= width:
        fit += 1
    return fit


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] → (B, H, W, C) bytes, rounded to the nearest level."""
    return (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def _tiles(images: torch.Tensor, scale: int, grayscale: bool) -> list[Image.Image]:
    pixels = to_uint8(images).repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    if grayscale:
        pixels = pixels[..., 0]
    return [Image.fromarray(tile.contiguous().numpy()) for tile in pixels]  # 2-D → "L", 3 channels → "RGB"


def _text_fill(canvas: Image.Image):
    return TEXT if canvas.mode == "L" else (TEXT,) * 3


def _draw_captions(canvas: Image.Image, captions: Sequence[str], font, tile_w: int, top: int, height: int,
                   background) -> None:
    fill = _text_fill(canvas)
    for column, caption in enumerate(captions):
        label = Image.new(canvas.mode, (tile_w, height), background)  # clips long captions
        draw = ImageDraw.Draw(label)
        draw.text((max(0, (tile_w - draw.textlength(caption, font=font)) // 2), 0), caption, fill=fill, font=font)
        canvas.paste(label, (GAP + column * (tile_w + GAP), top))
