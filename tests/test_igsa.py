"""IGSA (SoK Eq. 10): the inverse mean weighted per-layer gradient change under small input moves."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from evalgrid.data.digits import DigitsOptions, load_split
from evalgrid.metrics.igsa import IGSAOptions, igsa, layer_weights, parameter_layers
from evalgrid.catalogue import MODELS




@pytest.fixture(scope="module")
def digits_batch() -> tuple[torch.Tensor, torch.Tensor, object]:
    dataset = load_split(DigitsOptions(resolution=16))
    images, labels = dataset.batch([0, 1])
    return dataset.info.normalization.normalize(images), labels, dataset.info


class Steep(nn.Module):
    """logits = W·(c·x) + b with W = 0: the output ignores x, so Φ_W(x) = c·(p − y)·xᵀ with
    p = softmax(b) fixed, and Φ_b = p − y does not move. For one sample the gradient change
    is exactly ‖ΔΦ‖ = c·‖p − y‖·‖Δx‖: a map c times steeper in its input."""

    def __init__(self, info, steepness: float):
        super().__init__()
        self.steepness = steepness
        self.linear = nn.Linear(info.resolution ** 2, info.num_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):
        return self.linear(self.steepness * x.flatten(1))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_igsa_of_lenet_is_positive_and_finite(digits_batch):
    inputs, labels, info = digits_batch
    torch.manual_seed(0)
    model = MODELS["lenet"].build(MODELS["lenet"].options(), info)
    value = igsa(model, inputs, labels, samples=8, radius=1e-3, generator=seeded(0))
    assert value > 0 and math.isfinite(value)


def test_igsa_is_fixed_by_the_generator_seed(digits_batch):
    inputs, labels, info = digits_batch
    torch.manual_seed(0)
    model = MODELS["lenet"].build(MODELS["lenet"].options(), info)
    first = igsa(model, inputs, labels, samples=4, radius=1e-3, generator=seeded(3))
    again = igsa(model, inputs, labels, samples=4, radius=1e-3, generator=seeded(3))
    other = igsa(model, inputs, labels, samples=4, radius=1e-3, generator=seeded(4))
    assert first == again and first != other


def test_igsa_matches_the_closed_form_of_a_model_with_an_affine_gradient(digits_batch):
    # b = 0: p is uniform, ‖p − y‖ = √0.9; ΔX uniform in the r-ball of R^d: E‖ΔX‖ = r·d/(d+1).
    inputs, labels, info = digits_batch
    radius, dimension = 1e-3, inputs[:1].numel()
    value = igsa(Steep(info, 1.0), inputs[:1], labels[:1], samples=50, radius=radius, generator=seeded(0))
    expected = 1 / (math.sqrt(0.9) * radius * dimension / (dimension + 1))
    assert value == pytest.approx(expected, rel=2e-3)


def test_a_steeper_input_to_gradient_map_has_proportionally_smaller_igsa(digits_batch):
    inputs, labels, info = digits_batch
    smooth, steep = (igsa(Steep(info, c), inputs[:1], labels[:1], samples=8, radius=1e-3, generator=seeded(0))
                     for c in (1.0, 3.0))
    assert smooth / steep == pytest.approx(3.0, rel=1e-6)


def test_igsa_scales_as_one_over_the_radius_for_small_radii(digits_batch):
    # The finite difference is first-order in ΔX, so halving r (same directions) doubles IGSA.
    inputs, labels, info = digits_batch
    torch.manual_seed(0)
    model = MODELS["lenet"].build(MODELS["lenet"].options(), info)
    wide = igsa(model, inputs, labels, samples=4, radius=2e-3, generator=seeded(1))
    narrow = igsa(model, inputs, labels, samples=4, radius=1e-3, generator=seeded(1))
    assert narrow / wide == pytest.approx(2.0, rel=1e-2)


def test_shallow_layers_weigh_more():
    assert layer_weights(3).tolist() == pytest.approx([2.0, 1.5, 4 / 3])


def test_a_layer_is_a_module_with_its_weight_and_bias():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3, bias=False))
    assert parameter_layers(model) == [[0, 1], [2, 3], [4]]


def test_igsa_leaves_the_model_unchanged(digits_batch):
    inputs, labels, info = digits_batch
    torch.manual_seed(0)
    model = MODELS["convnet"].build(dataclasses.replace(MODELS["convnet"].options(), width=4), info)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    igsa(model, inputs, labels, samples=2, radius=1e-3, generator=seeded(0))
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert next(model.parameters()).dtype == torch.float32


def test_paper_defaults():
    assert (IGSAOptions().samples, IGSAOptions().radius) == (10_000, 1e-3)
