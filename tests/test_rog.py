"""ROG (Yue et al. 2023; FedLeak's ROGS) and its refiner prior: the representation is a ×4
lower-resolution image decoded bicubically, the step size follows the authors' cosine schedule,
the refiner post-processes the decoded images, and a run resumes bit for bit."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from evalgrid.attacks.base import model_gradients, shared_gradients
from evalgrid.priors import refiner
from evalgrid.priors.options import RefinerOptions
from attacking import resumed_and_straight
from test_attacks import attack, victim

QUICK = {"iterations": 4}


def with_prior(view, seed: int = 0):
    torch.manual_seed(seed)
    return dataclasses.replace(view, prior=refiner.Refiner(1, 4).eval())


def test_the_preset_is_the_authors_config():
    options = attack("rog").options
    assert (options.iterations, options.lr, options.downsample, options.refine) == (100, 0.05, 4, True)


def test_the_representation_is_a_quarter_side_image_decoded_bicubically():
    view = with_prior(victim(seed=0, batch_size=2)[0])
    rog = attack("rog", **QUICK)
    state = rog.start(view, torch.Generator().manual_seed(0))
    assert state.representation.shape == (2, 1, 8, 8)
    assert 0 <= state.representation.min() and state.representation.max() <= 1  # U(0, 1), as the code
    expected = F.interpolate(state.representation.detach(), size=32, mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(rog.decoded(view, state.representation.detach()), expected, rtol=0, atol=0)


def test_the_step_size_is_cosine_annealed_to_a_tenth_from_the_second_iteration():
    view = with_prior(victim(seed=0)[0])
    rog = attack("rog", iterations=10, lr=0.05)
    state = rog.start(view, torch.Generator().manual_seed(0))
    rates = []
    for _ in range(10):
        rates.append(state.optimizer.param_groups[0]["lr"])
        rog.step(view, state)
    # step k (from 0) runs at 0.005 + 0.045 (1 + cos(pi (k - 1) / 10)) / 2 for k >= 1, at 0.05 for k = 0
    expected = [0.05] + [0.005 + 0.045 * (1 + math.cos(math.pi * (k - 1) / 10)) / 2 for k in range(1, 10)]
    assert rates == pytest.approx(expected, rel=1e-9)


def test_the_result_is_the_refined_decoding_or_the_decoding_without_refine():
    view = with_prior(victim(seed=1)[0])
    refined = attack("rog", **QUICK).reconstruct(view, torch.Generator().manual_seed(3))
    plain_attack = attack("rog", **QUICK, refine=False)
    state = plain_attack.start(view, torch.Generator().manual_seed(3))
    while not plain_attack.done(state):
        plain_attack.step(view, state)
    decoded = plain_attack.decoded(view, state.representation.detach())
    plain = plain_attack.result(view, state)
    torch.testing.assert_close(plain.images, view.normalization.normalize(decoded))
    with torch.no_grad():
        torch.testing.assert_close(refined.images, view.normalization.normalize(view.prior(decoded).clamp(0, 1)))


def test_the_squared_l2_distance_is_zero_at_the_true_images_and_the_model_and_prior_are_untouched():
    view, client = victim(seed=0, batch_size=2, known_labels=True)
    view = with_prior(view)
    model, prior = copy.deepcopy(view.model.state_dict()), copy.deepcopy(view.prior.state_dict())
    rog = attack("rog", **QUICK)
    result = rog.reconstruct(view, torch.Generator().manual_seed(0))
    state = rog.start(view, torch.Generator().manual_seed(0))
    truth = view.normalization.normalize(client.images)
    assert rog.objective_terms(view, state, truth, create_graph=False)["squared_l2"].item() == pytest.approx(0, abs=1e-9)
    dummy = model_gradients(view, result.images, result.labels, create_graph=False)  # independently: Σ ||g' - g||²
    direct = sum(((d - t) ** 2).sum() for d, t in zip(dummy, shared_gradients(view)))
    assert result.final_loss == pytest.approx(direct.item(), rel=1e-5)
    assert all(torch.equal(model[k], v) for k, v in view.model.state_dict().items())
    assert all(torch.equal(prior[k], v) for k, v in view.prior.state_dict().items())


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    view = with_prior(victim(seed=2, batch_size=2)[0])
    resumed, straight = resumed_and_straight(lambda: attack("rog", **QUICK), view, 5, 2, tmp_path)
    torch.testing.assert_close(resumed.images, straight.images, rtol=0, atol=0)


def test_the_refiner_learns_to_undo_the_representations_degradation():
    torch.manual_seed(0)
    images = torch.rand(16, 1, 16, 16).round()  # sharp binary patterns: lost by the x4 representation
    options = RefinerOptions(width=8, epochs=30, batch_size=8, noise=0.0, lr=2e-3)
    network = refiner.Refiner(1, 8)
    coarse = refiner.coarse(images, 4)
    before = (coarse - images).abs().mean().item()
    refiner.train(options, network, images, None, lambda state: None, torch.device("cpu"))
    with torch.no_grad():
        after = (network(coarse) - images).abs().mean().item()
    assert after < 0.8 * before


def test_the_refiner_needs_sides_that_are_multiples_of_8_and_at_least_16():
    from evalgrid.errors import UserError

    with pytest.raises(UserError, match="multiples of 8"):
        refiner.check_side(12, 4)
    refiner.check_side(16, 4)
