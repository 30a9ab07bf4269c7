"""GradInversion (Yin et al. 2021) on a small conv+BN model whose client shares its BN statistics."""

from __future__ import annotations

import copy
import dataclasses
import io

import pytest
import torch

from evalgrid.catalogue import ATTACKS
from evalgrid.attacks.base import model_gradients
from evalgrid.attacks.gradinversion import bn_prior, dummy_bn_statistics, layerwise_l2_distance
from evalgrid.catalogue import LABEL_RULES
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.catalogue.options import InvalidOption, parse_options
from attacking import build_attack, run_to_end, seeded
from test_label_rules import victim

FEDAVG = LocalTraining("fedavg", steps=2, minibatch_size=2, lr=0.05, bn_mode="train", share_bn_statistics=True)


def attack(**overrides):
    return build_attack("gradinversion", **overrides)


run = run_to_end


def spread(images: torch.Tensor) -> float:
    """How far the restarts (dim 0) lie from their mean."""
    return (images - images.mean(dim=0)).norm().item()


def test_preset_is_the_papers_objective_with_breachings_prior_weights():
    # Yin et al.'s L_grad (unsquared per-layer l2) and R_BN (every layer alike), no Langevin noise;
    # the weights breaching's seethroughgradients.yaml sets (bn 0.1, tv 1e-4, l2 1e-6, 20k steps)
    assert dataclasses.asdict(ATTACKS["gradinversion"].options()) == {
        "iterations": 20_000, "lr": 0.1, "lr_decay": True, "distance": "l2", "scale": 1e-4, "bn": 0.1,
        "bn_first_layer": 1.0, "tv": 1e-4, "l2": 1e-6, "group": 0.0, "restarts": 4, "noise": 0.0, "boxed": True,
        "init": "randn", "label_inference": "yin",
        "early_stop_window": 0, "early_stop_tolerance": 1e-3}


def test_it_refuses_an_update_without_bn_statistics():
    view, _ = victim(0, [1, 2], share_bn=False)
    with pytest.raises(ValueError, match="GradInversion needs shared BN statistics"):
        attack(iterations=1).reconstruct(view, seeded())


@pytest.mark.parametrize("training", [None, FEDAVG], ids=["fedsgd", "fedavg"])
def test_the_bn_prior_is_zero_at_the_true_images_and_not_at_random_ones(training):
    view, client = victim(0, [1, 2, 3, 4], training=training)
    truth = view.normalization.normalize(client.images)
    assert bn_prior(view, truth, view.update.bn_statistics).item() == pytest.approx(0, abs=1e-5)
    assert bn_prior(view, torch.randn_like(truth), view.update.bn_statistics).item() > 0.1


def test_the_first_bn_layer_weighs_ten_times_the_others():
    view, client = victim(0, [1, 2, 3])
    inputs = torch.randn_like(client.images)
    recorded = dummy_bn_statistics(view, inputs)
    per_layer = [((m - tm).norm() + (v - tv).norm()).item()
                 for (m, v), (tm, tv) in zip(recorded, view.update.bn_statistics)]
    assert len(per_layer) == 2
    expected = 10 * per_layer[0] + per_layer[1]
    assert bn_prior(view, inputs, view.update.bn_statistics, 10.0).item() == pytest.approx(expected, rel=1e-5)


def test_at_the_true_images_every_term_but_the_image_priors_vanishes():
    view, client = victim(0, [1, 2, 3])
    gradinversion = attack(restarts=1)
    state = gradinversion.start(view, seeded())
    truth = view.normalization.normalize(client.images)
    state.labels = client.labels.clone()
    terms = {k: v.item() for k, v in gradinversion.objective_terms(view, state, truth, None).items()}
    assert set(terms) == {"gradient", "bn", "tv", "l2"}
    assert terms["gradient"] == pytest.approx(0, abs=1e-12)
    assert terms["bn"] == pytest.approx(0, abs=1e-5)
    assert terms["l2"] == pytest.approx(1e-6 * 0.5 * (truth ** 2).sum().item() / truth.numel(), rel=1e-5)


def test_it_lowers_its_loss_with_the_shared_statistics():
    view, _ = victim(0, [1, 3, 5])
    gradinversion = attack(iterations=40, restarts=1)
    state = gradinversion.start(view, seeded())
    start = state.images[0].detach().clone()
    start_objective = gradinversion.objective(view, state, start, None).item()
    start_distance = layerwise_l2_distance(model_gradients(view, start, state.labels, create_graph=False),
                                           state.target).item()
    result = gradinversion.reconstruct(view, seeded())
    assert gradinversion.objective(view, state, result.images, None).item() < start_objective / 2
    assert result.final_loss < start_distance / 2
    assert (bn_prior(view, result.images, view.update.bn_statistics).item()
            < bn_prior(view, start, view.update.bn_statistics).item())


def test_the_group_term_pulls_the_restarts_together():
    view, _ = victim(0, [1, 2])
    options = dict(iterations=20, restarts=3, lr_decay=False)
    apart = run(attack(group=0.0, **options), view).images.detach()
    together = run(attack(group=10.0, **options), view).images.detach()
    assert spread(together) < spread(apart) / 2


WRITTEN_OUT = {
    # Yin et al.'s L_grad: the unsquared l2 norm of each layer's difference, summed over layers
    "l2": lambda dummy, target: sum(((d - t) ** 2).sum().sqrt() for d, t in zip(dummy, target)),
    # breaching's Euclidean objective: 1e-4 · ½ · Σ (g' − g)²
    "euclidean": lambda dummy, target: 1e-4 * 0.5 * sum(((d - t) ** 2).sum() for d, t in zip(dummy, target)),
}


@pytest.mark.parametrize("distance", WRITTEN_OUT)
def test_it_returns_the_restart_with_the_lowest_gradient_distance(distance):
    view, _ = victim(0, [1, 2])
    gradinversion = attack(iterations=5, restarts=3, distance=distance)
    state = run(gradinversion, view)
    distances = [WRITTEN_OUT[distance](model_gradients(view, images.detach(), state.labels, create_graph=False),
                                       state.target).item()
                 for images in state.images]
    result = gradinversion.result(view, state)
    best = min(range(3), key=distances.__getitem__)
    assert torch.equal(result.images, state.images[best].detach())
    assert result.final_loss == pytest.approx(distances[best], rel=1e-5)
    assert result.iterations == 15


def test_labels_come_from_the_yin_rule_unless_known():
    view, client = victim(0, [4, 0, 7])
    assert torch.equal(attack(iterations=1, restarts=1).reconstruct(view, seeded()).labels, LABEL_RULES["yin"].build(view))
    given = (client.labels + 1) % 10
    known = dataclasses.replace(view, known_labels=given)
    assert torch.equal(attack(iterations=1, restarts=1).reconstruct(known, seeded()).labels, given)


@pytest.mark.parametrize("training", [None, FEDAVG], ids=["fedsgd", "fedavg"])
def test_snapshot_restore_and_continue_equals_an_uninterrupted_run(training):
    view, _ = victim(0, [1, 2, 3, 4], training=training)
    gradinversion = attack(iterations=6, restarts=2, noise=0.5)  # noise: the per-step draws resume too
    straight = run(gradinversion, view, seed=3)
    interrupted = gradinversion.start(view, seeded(3))
    for _ in range(3):
        gradinversion.step(view, interrupted)
    buffer = io.BytesIO()
    torch.save(gradinversion.snapshot(interrupted), buffer)
    buffer.seek(0)
    resumed = gradinversion.restore(view, seeded(3), torch.load(buffer, weights_only=True))
    while not gradinversion.done(resumed):
        gradinversion.step(view, resumed)
    assert resumed.iteration == 6
    assert torch.equal(resumed.images, straight.images)
    resumed_result, straight_result = gradinversion.result(view, resumed), gradinversion.result(view, straight)
    assert torch.equal(resumed_result.images, straight_result.images)
    assert resumed_result.final_loss == straight_result.final_loss


def test_it_attacks_a_multi_step_fedavg_update():
    view, _ = victim(0, [1, 2, 3, 4], training=FEDAVG)
    gradinversion = attack(iterations=30, restarts=1)
    state = gradinversion.start(view, seeded())
    start = state.images[0].detach().clone()
    start_distance = layerwise_l2_distance(model_gradients(view, start, state.labels, create_graph=False),
                                           state.target).item()
    result = gradinversion.reconstruct(view, seeded())
    assert result.images.shape == (4, 1, 16, 16)
    assert result.final_loss < 0.7 * start_distance


def test_cosine_distance_is_an_option():
    view, _ = victim(0, [1, 2])
    result = attack(iterations=3, restarts=1, distance="cosine").reconstruct(view, seeded())
    assert 0 <= result.final_loss <= 2


@pytest.mark.parametrize("training_mode", [True, False])
def test_the_attackers_model_is_left_as_given(training_mode):
    view, _ = victim(0, [1, 2])
    view.model.train(training_mode)
    before = copy.deepcopy(view.model.state_dict())
    attack(iterations=2, restarts=2).reconstruct(view, seeded())
    assert view.model.training is training_mode
    assert all(p.grad is None for p in view.model.parameters())
    # In train mode the BN running statistics are not checked: the FedSGD path of the shared
    # simulation (fl.local_training.local_update → loss_gradients) calls the model itself and
    # so advances them; the attack's own forward passes (BN prior) leave them alone.
    checked = {name for name, _ in view.model.named_parameters()} if training_mode else set(before)
    assert all(torch.equal(before[key], value) for key, value in view.model.state_dict().items() if key in checked)


def test_the_pixels_stay_in_the_box():
    view, _ = victim(0, [1, 2])
    pixels = view.normalization.denormalize(attack(iterations=5, restarts=2, lr=1.0).reconstruct(view, seeded()).images)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


@pytest.mark.parametrize(("key", "value"), [
    ("iterations", 0), ("lr", 0.0), ("bn", -0.1), ("group", -1.0), ("restarts", 0), ("noise", -0.2),
    ("distance", "l1"), ("label_inference", "joint"),
])
def test_options_out_of_range_are_rejected(key, value):
    with pytest.raises(InvalidOption):
        parse_options(ATTACKS["gradinversion"].options, {key: value})
