"""The reconstruction picture: originals on top, matched reconstructions below."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from evalgrid.evaluation.artifacts import GAP, reconstruction_png


def random_images(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def upscaled_bytes(image: torch.Tensor, scale: int) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H·s, W·s, C) uint8, each pixel repeated s × s times."""
    levels = np.rint(np.clip(image.double().numpy(), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    return np.kron(levels, np.ones((scale, scale, 1), dtype=np.uint8))


def tile(picture: Image.Image, row: int, column: int, side: int) -> np.ndarray:
    left, top = GAP + column * (side + GAP), GAP + row * (side + GAP)
    pixels = np.asarray(picture.crop((left, top, left + side, top + side)))
    return pixels if pixels.ndim == 3 else pixels[..., None]


@pytest.mark.parametrize("channels, mode", [(3, "RGB"), (1, "L")])
def test_picture_has_two_rows_of_upscaled_tiles(channels, mode):
    originals = random_images((3, channels, 32, 32))
    picture = decode(reconstruction_png(originals, random_images((3, channels, 32, 32), seed=1)))
    assert picture.mode == mode
    assert picture.size == (3 * 64 + 4 * GAP, 2 * 64 + 3 * GAP)


@pytest.mark.parametrize("channels", [1, 3])
def test_top_row_is_the_originals_and_bottom_row_the_reconstructions(channels):
    originals = random_images((3, channels, 32, 32))
    reconstructions = random_images((3, channels, 32, 32), seed=1)
    picture = decode(reconstruction_png(originals, reconstructions))
    for column in range(3):
        np.testing.assert_array_equal(tile(picture, 0, column, 64), upscaled_bytes(originals[column], 2))
        np.testing.assert_array_equal(tile(picture, 1, column, 64), upscaled_bytes(reconstructions[column], 2))


@pytest.mark.parametrize("side, tile_side", [(16, 64), (28, 84), (32, 64), (100, 100)])
def test_tiles_are_upscaled_by_a_whole_factor_to_at_least_64_pixels(side, tile_side):
    images = random_images((2, 1, side, side))
    picture = decode(reconstruction_png(images, images))
    assert picture.size == (2 * tile_side + 3 * GAP, 2 * tile_side + 3 * GAP)
    np.testing.assert_array_equal(tile(picture, 0, 1, tile_side), upscaled_bytes(images[1], tile_side // side))


def test_pixels_outside_the_unit_range_are_clamped():
    originals = torch.tensor([-1.0, 2.0]).view(2, 1, 1, 1).expand(2, 3, 16, 16)
    picture = decode(reconstruction_png(originals, originals))
    assert tile(picture, 0, 0, 64).max() == 0
    assert tile(picture, 0, 1, 64).min() == 255


def test_captions_add_a_row_of_text_under_the_reconstructions():
    originals = random_images((2, 3, 32, 32))
    plain = decode(reconstruction_png(originals, originals))
    captioned = decode(reconstruction_png(originals, originals, captions=["31.2 dB", "12.0 dB"]))
    assert captioned.width == plain.width and captioned.height > plain.height
    caption_row = np.asarray(captioned)[plain.height:]
    for column in range(2):
        left = GAP + column * (64 + GAP)
        assert caption_row[:, left:left + 64].min() < 128  # dark text on the white background
    np.testing.assert_array_equal(np.asarray(captioned)[:plain.height], np.asarray(plain))


def test_one_caption_is_needed_per_image():
    images = random_images((2, 1, 16, 16))
    with pytest.raises(ValueError, match="1 captions for 2 images"):
        reconstruction_png(images, images, captions=["only one"])
