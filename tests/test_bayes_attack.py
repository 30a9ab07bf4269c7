"""BayesAttack (Balunović et al. 2022, as FedLeak's Appendix A runs it) passes the tests every
attack passes, and its objective, weight annealing, step-size schedules and restarts are the
reference code's and FedLeak's, checked against the formulas written out here."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from evalgrid.attacks.base import NonFiniteLoss
from evalgrid.catalogue import ATTACKS
from evalgrid.catalogue.options import InvalidOption, parse_options
from evalgrid.fl.threat_model import SharedUpdate
from test_attacks import attack, reconstruct, victim

QUICK = {"iterations": 4}


def true_gradients(view, inputs, labels):
    """∇_W of the mean cross-entropy at ``inputs``, written out with plain autograd."""
    model = copy.deepcopy(view.model)
    loss = F.cross_entropy(model(inputs), labels)
    return torch.autograd.grad(loss, list(model.parameters()))


def circular_squared_tv(images):
    """Σ_{c,h,w} (x[h,w] − x[h+1,w])² + (x[h,w] − x[h,w+1])², indices mod H and W, averaged over the batch."""
    below = torch.cat([images[..., 1:, :], images[..., :1, :]], dim=-2)
    beside = torch.cat([images[..., :, 1:], images[..., :, :1]], dim=-1)
    per_image = ((images - below) ** 2 + (images - beside) ** 2).sum(dim=(1, 2, 3))
    return per_image.mean()


def learning_rates(bayes, view, steps):
    """The step size each of the first ``steps`` Adam steps used."""
    state = bayes.start(view, torch.Generator().manual_seed(0))
    rates = []
    for _ in range(steps):
        rates.append(state.optimizer.param_groups[0]["lr"])
        bayes.step(view, state)
    return rates


def test_the_preset_is_the_reference_codes_bayes_run():
    assert dataclasses.asdict(ATTACKS["bayes"].options()) == {
        "iterations": 200, "lr": 0.5, "schedule": "exponential", "decay": 0.94, "restart_period": 1000,
        "likelihood": "gaussian", "sigma": 0.1, "anneal_iterations": 100, "anneal_start": 0.1, "tv": 1.0,
        "restarts": 1, "init": "randn", "label_inference": "idlg", "early_stop_window": 0,
        "early_stop_tolerance": 1e-3}


def test_the_objective_is_the_weighted_gaussian_negative_log_likelihood_plus_the_squared_tv_prior():
    view, client = victim(seed=0, batch_size=2, known_labels=True)
    bayes = attack("bayes", sigma=0.3, tv=0.5)
    state = bayes.start(view, torch.Generator().manual_seed(0))
    point = torch.randn((2, 1, 32, 32), generator=torch.Generator().manual_seed(1))
    terms = bayes.objective_terms(view, state, point, weight=0.25, create_graph=False)
    dummy = true_gradients(view, point, client.labels)
    squared = sum(((d - g) ** 2).sum() for d, g in zip(dummy, view.update.gradients))
    assert terms["likelihood"].item() == pytest.approx(0.25 * squared.item() / (2 * 0.3**2), rel=1e-5)
    assert terms["tv"].item() == pytest.approx(0.5 * circular_squared_tv(point).item(), rel=1e-5)


def test_the_laplacian_likelihood_is_the_l1_distance_over_the_scale():
    view, client = victim(seed=0, known_labels=True)
    bayes = attack("bayes", likelihood="laplacian", sigma=0.2, tv=0.0)
    state = bayes.start(view, torch.Generator().manual_seed(0))
    point = torch.randn((1, 1, 32, 32), generator=torch.Generator().manual_seed(1))
    terms = bayes.objective_terms(view, state, point, weight=1.0, create_graph=False)
    absolute = sum((d - g).abs().sum() for d, g in zip(true_gradients(view, point, client.labels),
                                                       view.update.gradients))
    assert set(terms) == {"likelihood"}
    assert terms["likelihood"].item() == pytest.approx(absolute.item() / 0.2, rel=1e-5)


def test_the_gradient_term_is_zero_at_the_true_images():
    view, client = victim(seed=0, batch_size=2, known_labels=True)
    bayes = attack("bayes")
    state = bayes.start(view, torch.Generator().manual_seed(0))
    truth = view.normalization.normalize(client.images)
    assert bayes.objective_terms(view, state, truth, weight=1.0, create_graph=False)["likelihood"].item() == (
        pytest.approx(0.0, abs=1e-8))
    assert bayes.gradient_distance(view, state, truth).item() == pytest.approx(0.0, abs=1e-10)


def test_the_likelihood_weight_grows_geometrically_from_c_sigma_squared_to_one():
    bayes = attack("bayes", anneal_iterations=10, anneal_start=2.0, sigma=0.1)
    # the reference's loop: fac = start = min(c·σ², 1), α = (1/start)^(1/A); each step fac ← min(fac·α, 1)
    start = min(2.0 * 0.1**2, 1.0)
    alpha = math.exp(math.log(1 / start) / 10)
    fac, expected = start, []
    for _ in range(14):
        fac = min(fac * alpha, 1.0)
        expected.append(fac)
    assert [bayes.weight(t) for t in range(14)] == pytest.approx(expected, rel=1e-9)
    assert bayes.weight(9) == pytest.approx(1.0) and bayes.weight(0) < 0.04


def test_without_annealing_the_weight_is_one():
    assert attack("bayes", anneal_iterations=0).weight(0) == 1.0


def test_the_exponential_schedule_multiplies_the_step_size_by_the_decay_every_step():
    view, _ = victim(seed=0)
    rates = learning_rates(attack("bayes", iterations=6, lr=0.5, decay=0.9), view, 6)
    assert rates == pytest.approx([0.5 * 0.9**t for t in range(6)], rel=1e-9)


def test_the_warm_restart_schedule_anneals_by_cosine_and_jumps_back_every_period():
    view, _ = victim(seed=0)
    rates = learning_rates(attack("bayes", iterations=10, lr=0.5, schedule="warm_restarts", restart_period=4), view, 10)
    expected = [0.5 * (1 + math.cos(math.pi * (t % 4) / 4)) / 2 for t in range(10)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert rates[4] == 0.5 and rates[3] < 0.1  # the sharp increase after each period


def test_the_best_restart_is_kept():
    view, client = victim(seed=3, known_labels=True)
    bayes = attack("bayes", iterations=3, restarts=3)
    state = bayes.start(view, torch.Generator().manual_seed(4))
    finished = []
    while not bayes.done(state):
        running, restart = state.images, state.restart
        bayes.step(view, state)
        if state.restart != restart:
            finished.append(running.detach().clone())  # Adam updated it in place: the trial's last images
    distances = [sum(((d - g) ** 2).sum() for d, g in zip(true_gradients(view, images, client.labels),
                                                          view.update.gradients)).item() for images in finished]
    best = distances.index(min(distances))
    assert best != len(finished) - 1  # not the last trial (what the reference code returns)
    result = bayes.result(view, state)
    assert torch.equal(result.images, finished[best])
    assert result.final_loss == pytest.approx(distances[best], rel=1e-5)
    assert result.iterations == 9


def test_known_labels_are_used_verbatim():
    view, client = victim(seed=0, batch_size=2)
    given = (client.labels + 1) % 10
    result = reconstruct("bayes", dataclasses.replace(view, known_labels=given), **QUICK)
    assert torch.equal(result.labels, given)
    assert result.images.shape == (2, 1, 32, 32)


def test_the_attackers_model_is_left_as_given():
    view, _ = victim(seed=0)
    weights = copy.deepcopy(view.model.state_dict())
    reconstruct("bayes", view, **QUICK)
    assert all(torch.equal(weights[key], value) for key, value in view.model.state_dict().items())
    assert all(p.grad is None for p in view.model.parameters())


def test_a_nan_update_raises_non_finite_loss_naming_the_iteration():
    view, _ = victim(seed=0)
    poisoned = SharedUpdate(tuple(g * math.nan for g in view.update.gradients), view.update.num_samples)
    with pytest.raises(NonFiniteLoss, match="iteration 0"):
        reconstruct("bayes", dataclasses.replace(view, update=poisoned), **QUICK)


def test_a_run_resumed_from_a_snapshot_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    view, _ = victim(seed=2, batch_size=2)
    options = {"iterations": 6, "restarts": 2, "schedule": "warm_restarts", "restart_period": 4}
    uninterrupted = reconstruct("bayes", view, seed=5, **options)
    first = attack("bayes", **options)
    state = first.start(view, torch.Generator().manual_seed(5))
    for _ in range(8):  # into the second restart, past its schedule's first restart
        first.step(view, state)
    torch.save(first.snapshot(state), tmp_path / "state.pt")
    second = attack("bayes", **options)
    resumed = second.restore(view, torch.Generator().manual_seed(5),
                             torch.load(tmp_path / "state.pt", weights_only=True))
    while not second.done(resumed):
        second.step(view, resumed)
    result = second.result(view, resumed)
    torch.testing.assert_close(result.images, uninterrupted.images, rtol=0, atol=0)
    assert result.final_loss == uninterrupted.final_loss


@pytest.mark.parametrize(("key", "value"), [
    ("iterations", 0), ("lr", 0.0), ("decay", 1.5), ("restart_period", 0), ("sigma", 0.0), ("tv", -1.0),
    ("restarts", 0), ("likelihood", "cosine"), ("schedule", "cosine"), ("label_inference", "joint"),
])
def test_options_out_of_range_are_rejected(key, value):
    with pytest.raises(InvalidOption):
        parse_options(ATTACKS["bayes"].options, {key: value})
