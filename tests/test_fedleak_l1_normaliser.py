"""FedLeak's relative L1 term ‖g' − ĝ‖₁ / ‖g'‖₁: the norm normalises, it is not optimised. The
paper's own derivative (proof of Theorem 2, Eq. (8)) keeps 1/|g'| outside: ∇ = (1/|g'|)·Σ sign(·)·∂g'/∂x'.

Differentiating through the denominator adds −‖g'−ĝ‖₁·sign(g')/‖g'‖₁², which makes inflating a
dummy gradient that disagrees with the target a descent direction (the term falls towards 1 as
‖g'‖ grows). At FedLeak Fig. 4's smoke that transient took the first ~40 of 100 Adam steps."""

from __future__ import annotations

import pytest
import torch

from evalgrid.attacks.fedleak import distance_terms


def l1_gradient(dummy: tuple[torch.Tensor, ...], target: tuple[torch.Tensor, ...], matched: torch.Tensor):
    leaves = tuple(d.clone().requires_grad_(True) for d in dummy)
    value = distance_terms(leaves, target, matched, "l1")["l1"]
    gradients = torch.autograd.grad(value, leaves)
    return value, torch.cat([g.reshape(-1) for g in gradients])


def test_the_l1_terms_gradient_is_the_sign_of_the_difference_over_the_dummy_norm():
    # Λ = {0, 2}: a = (3, 4), b = (1, 2); by hand the term is 4/7 and its gradient w.r.t. the
    # flattened dummy gradients is sign(a − b)/‖a‖₁ = 1/7 on Λ, 0 elsewhere (differentiating
    # the denominator too would give 1/7 − 4/49 = 3/49).
    dummy = (torch.tensor([3.0, 0.0]), torch.tensor([[4.0, 9.0]]))
    target = (torch.tensor([1.0, 5.0]), torch.tensor([[2.0, -7.0]]))
    value, gradient = l1_gradient(dummy, target, torch.tensor([0, 2]))
    assert value.item() == pytest.approx(4 / 7, rel=1e-6)
    assert gradient.tolist() == pytest.approx([1 / 7, 0.0, 1 / 7, 0.0], rel=1e-6)


def test_inflating_a_dummy_gradient_that_disagrees_with_the_target_is_not_a_descent_direction():
    # Disjoint supports: ‖c·a − b‖₁ = c‖a‖₁ + ‖b‖₁ grows with c, so scaling a up moves away from
    # b. The derivative along a is Σ sign(a − b)·a / ‖a‖₁ = 1 (by hand), not 1 − (‖a‖₁ + ‖b‖₁)/‖a‖₁ < 0.
    dummy = (torch.tensor([0.5, -0.5, 0.0, 0.0]),)
    target = (torch.tensor([0.0, 0.0, 3.0, -1.0]),)
    _, gradient = l1_gradient(dummy, target, torch.arange(4))
    assert torch.dot(gradient, dummy[0]).item() == pytest.approx(1.0, rel=1e-6)
