"""Gradient distances and the TV prior: known values on small hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from evalgrid.attacks.losses import cosine_distance, squared_l2_distance, total_variation


def layers(*values: list[float]) -> list[torch.Tensor]:
    return [torch.tensor(v) for v in values]


GRADIENTS = [torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.randn(6)]


def test_cosine_distance_is_zero_for_identical_gradients():
    assert cosine_distance(GRADIENTS, GRADIENTS).item() == pytest.approx(0, abs=1e-6)


def test_cosine_distance_is_two_for_opposite_gradients():
    assert cosine_distance([-g for g in GRADIENTS], GRADIENTS).item() == pytest.approx(2, abs=1e-6)


def test_cosine_distance_ignores_positive_scaling():
    other = [g + 0.5 for g in GRADIENTS]
    scaled = [3.7 * g for g in other]
    expected = cosine_distance(other, GRADIENTS).item()
    assert cosine_distance(scaled, GRADIENTS).item() == pytest.approx(expected, rel=1e-5)


def test_cosine_distance_treats_all_layers_as_one_vector():
    # Concatenated: <(3,1),(3,-1)> / 10 = 0.8. A per-layer average would give (0 + 2) / 2 = 1.
    assert cosine_distance(layers([3.0], [1.0]), layers([3.0], [-1.0])).item() == pytest.approx(0.2)


def test_squared_l2_distance_sums_squares_over_layers():
    # (1 - 0)² + (2 - 0)² + (3 - 1)² = 9
    assert squared_l2_distance(layers([1.0, 2.0], [3.0]), layers([0.0, 0.0], [1.0])).item() == 9


def test_total_variation_of_a_constant_image_is_zero():
    assert total_variation(torch.full((2, 3, 8, 8), 0.7)).item() == 0


def test_total_variation_adds_mean_horizontal_and_vertical_differences():
    rows, columns = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
    image = (rows + 2 * columns).view(1, 1, 3, 3)  # neighbours differ by 2 across, 1 down
    assert total_variation(image).item() == 3


@pytest.mark.parametrize("distance", [cosine_distance, squared_l2_distance])
def test_a_flat_target_gives_what_its_layers_give(distance):
    dummy = [g + 0.3 for g in GRADIENTS]
    flat = torch.cat([g.reshape(-1) for g in GRADIENTS])
    assert distance(dummy, flat).item() == pytest.approx(distance(dummy, GRADIENTS).item(), rel=1e-6)


def test_a_flat_target_of_another_size_is_refused():
    with pytest.raises(ValueError, match="the target has 23 elements, the gradients 24"):
        cosine_distance(GRADIENTS, torch.zeros(23))
