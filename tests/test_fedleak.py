"""FedLeak (Fan et al. 2025) on a small conv+BN+ReLU model."""

from __future__ import annotations

import copy
import dataclasses
import io
import math

import pytest
import torch

from evalgrid.catalogue import ATTACKS
from evalgrid.attacks.base import model_gradients, shared_gradients
from evalgrid.attacks.fedleak import activation_l1, matched_elements, partial_distance
from evalgrid.catalogue import LABEL_RULES
from evalgrid.attacks.losses import flatten, total_variation
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.catalogue.options import InvalidOption, parse_options
from attacking import build_attack, run_to_end, seeded
from test_label_rules import victim

FEDAVG = LocalTraining("fedavg", steps=2, minibatch_size=2, lr=0.05, bn_mode="train", share_bn_statistics=False)


def attack(**overrides):
    return build_attack("fedleak", **overrides)


run = run_to_end


def test_preset_is_the_papers_setting():
    assert dataclasses.asdict(ATTACKS["fedleak"].options()) == {
        "iterations": 10_000, "lr": 0.1, "partial": True, "keep": 0.5, "distance": "l1_and_cosine", "blend": 0.5,
        "lookahead": 0.1, "tv": 1e-4, "activation": 1e-4, "init": "randn", "label_inference": "fedleak",
        "early_stop_window": 0, "early_stop_tolerance": 1e-3}


@pytest.mark.parametrize("keep", [0.15, 0.5, 0.8, 1.0])
def test_the_mask_keeps_exactly_the_top_share_of_the_update_by_magnitude(keep):
    view, _ = victim(0, [1, 2, 3])
    magnitudes = flatten(shared_gradients(view)).abs()
    matched = matched_elements(shared_gradients(view), keep)
    assert len(matched) == round(keep * len(magnitudes)) == len(set(matched.tolist()))
    kept = torch.zeros_like(magnitudes, dtype=torch.bool)
    kept[matched] = True
    if keep < 1:
        assert magnitudes[kept].min() >= magnitudes[~kept].max()


def test_the_attack_fixes_its_mask_from_the_shared_update_and_full_matching_keeps_everything():
    view, _ = victim(0, [1, 2, 3])
    target = shared_gradients(view)
    partial = attack(keep=0.3).start(view, seeded())
    assert torch.equal(partial.matched, matched_elements(target, 0.3))
    full = attack(keep=0.3, partial=False).start(view, seeded())
    assert torch.equal(full.matched, torch.arange(flatten(target).numel()))


def test_the_distance_ignores_unmatched_elements_and_is_l1_plus_cosine_on_the_matched_ones():
    view, _ = victim(0, [1, 2])
    target = shared_gradients(view)
    matched = matched_elements(target, 0.5)
    dummy = tuple(torch.randn_like(t) for t in target)
    unmatched = torch.ones(flatten(target).numel(), dtype=torch.bool)
    unmatched[matched] = False
    changed = flatten(dummy).clone()
    changed[unmatched] += 1.0
    split = [t.numel() for t in target]
    changed = tuple(c.view_as(t) for c, t in zip(changed.split(split), target))
    a, b = flatten(dummy)[matched], flatten(target)[matched]
    expected = (a - b).abs().sum() / a.abs().sum() + 1 - torch.nn.functional.cosine_similarity(a, b, dim=0)
    assert partial_distance(dummy, target, matched).item() == pytest.approx(expected.item(), rel=1e-5)
    assert partial_distance(changed, target, matched).item() == pytest.approx(expected.item(), rel=1e-5)


# Table 19's ablation on a hand-made pair: Λ = {0, 2} picks a = (3, 4) from the dummy gradients
# and b = (1, 2) from the shared ones; ‖a − b‖₁ / ‖a‖₁ = 4/7 (Sec. 4.2's 1/|g'| normalisation),
# 1 − cos(a, b) = 1 − 11 / (5·√5).
HAND_DUMMY = (torch.tensor([3.0, 0.0]), torch.tensor([[4.0, 9.0]]))
HAND_TARGET = (torch.tensor([1.0, 5.0]), torch.tensor([[2.0, -7.0]]))
HAND_MATCHED = torch.tensor([0, 2])
HAND_L1, HAND_COSINE = 4 / 7, 1 - 11 / (5 * math.sqrt(5))


@pytest.mark.parametrize(("distance", "expected"), [
    ("l1_and_cosine", HAND_L1 + HAND_COSINE), ("cosine", HAND_COSINE), ("l1", HAND_L1)])
def test_the_distance_keeps_the_terms_table_19_ablates(distance, expected):
    value = partial_distance(HAND_DUMMY, HAND_TARGET, HAND_MATCHED, distance)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_the_default_distance_is_l1_plus_cosine():
    assert ATTACKS["fedleak"].options().distance == "l1_and_cosine"
    assert partial_distance(HAND_DUMMY, HAND_TARGET, HAND_MATCHED).item() == pytest.approx(
        HAND_L1 + HAND_COSINE, rel=1e-6)


@pytest.mark.parametrize("distance", ["l1_and_cosine", "cosine", "l1"])
def test_the_objective_and_the_final_loss_use_the_chosen_terms(distance):
    view, _ = victim(0, [1, 2])
    fedleak = attack(distance=distance, tv=0.0, activation=0.0, iterations=2)
    state = fedleak.start(view, seeded())
    inputs = state.images.detach()
    expected = partial_distance(model_gradients(view, inputs, state.labels, create_graph=False), state.target,
                                state.matched, distance).item()
    assert fedleak.objective(view, state, inputs).item() == pytest.approx(expected, rel=1e-5)
    while not fedleak.done(state):
        fedleak.step(view, state)
    final = model_gradients(view, state.images.detach(), state.labels, create_graph=False)
    assert fedleak.result(view, state).final_loss == pytest.approx(
        partial_distance(final, state.target, state.matched, distance).item(), rel=1e-6)


def test_each_distance_lowers_its_own_loss():
    view, _ = victim(0, [1, 3, 5])
    for distance in ["cosine", "l1"]:
        fedleak = attack(distance=distance, iterations=30)
        state = fedleak.start(view, seeded())
        start = partial_distance(model_gradients(view, state.images.detach(), state.labels, create_graph=False),
                                 state.target, state.matched, distance).item()
        assert fedleak.reconstruct(view, seeded()).final_loss < start / 2, distance


def test_the_activation_penalty_is_the_mean_absolute_output_of_every_relu_summed():
    view, _ = victim(0, [1, 2])
    inputs = torch.randn(2, 1, 16, 16)
    model = copy.deepcopy(view.model)  # a forward in train mode advances the BN running statistics
    conv1, bn1, relu1, conv2, bn2, relu2 = model.features
    first = relu1(bn1(conv1(inputs)))
    second = relu2(bn2(conv2(first)))
    expected = first.abs().sum() / first.numel() + second.abs().sum() / second.numel()
    assert activation_l1(view, inputs).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("training", [None, FEDAVG], ids=["fedsgd", "fedavg"])
def test_the_objective_adds_the_activation_prior_of_a_forward_pass_at_the_global_weights(training):
    """With FedSGD the prior is read from the gradient's own forward pass, with FedAvg from a
    pass of its own: either way the objective (and its gradient) is the sum of its terms."""
    view, _ = victim(0, [1, 2], training=training)
    fedleak = attack(tv=1e-2, activation=1e-2)
    state = fedleak.start(view, seeded())
    inputs = state.images.detach().clone().requires_grad_(True)
    objective = fedleak.objective(view, state, inputs)
    terms = (partial_distance(model_gradients(view, inputs, state.labels), state.target, state.matched)
             + 1e-2 * total_variation(inputs) + 1e-2 * activation_l1(view, inputs))
    assert objective.item() == pytest.approx(terms.item(), rel=1e-6)
    (by_objective,) = torch.autograd.grad(objective, inputs)
    (by_terms,) = torch.autograd.grad(terms, inputs)
    assert torch.allclose(by_objective, by_terms, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("training", [None, FEDAVG], ids=["fedsgd", "fedavg"])
def test_at_the_true_images_and_labels_the_gradient_terms_vanish_and_the_priors_are_their_formulas(training):
    """The magnitude of each term at the client's own batch (no defense): L1 and cosine are 0
    (the attacker reproduces the update exactly), α·TV and β·activation are the paper's priors
    written out here on the true pixels."""
    view, data = victim(0, [1, 2], training=training)
    fedleak = attack(distance="l1_and_cosine", tv=1e-4, activation=1e-4, keep=0.5)
    state = fedleak.start(view, seeded())
    state.labels = data.labels.clone()
    truth = view.normalization.normalize(data.images)
    terms = {name: value.item() for name, value in fedleak.objective_terms(view, state, truth).items()}
    assert set(terms) == {"l1", "cosine", "tv", "activation"}
    assert terms["l1"] == pytest.approx(0.0, abs=1e-5)  # relative: float32 rounding of W_U only
    assert terms["cosine"] == pytest.approx(0.0, abs=1e-5)
    horizontal = (truth[..., :, 1:] - truth[..., :, :-1]).abs().sum() / truth[..., :, 1:].numel()
    vertical = (truth[..., 1:, :] - truth[..., :-1, :]).abs().sum() / truth[..., 1:, :].numel()
    assert terms["tv"] == pytest.approx(1e-4 * (horizontal + vertical).item(), rel=1e-5)
    model = copy.deepcopy(view.model)
    conv1, bn1, relu1, conv2, bn2, relu2 = model.features
    first = relu1(bn1(conv1(truth)))
    second = relu2(bn2(conv2(first)))
    assert terms["activation"] == pytest.approx(1e-4 * (first.abs().mean() + second.abs().mean()).item(), rel=1e-4)


def test_a_step_blends_the_gradients_at_the_point_and_one_descent_step_ahead():
    """Eq. 13: the Adam step uses (1 − γ)·∇L(x') + γ·∇L(x̃), x̃ = x' − h·√n·∇L(x')/‖∇L(x')‖ boxed."""
    view, _ = victim(0, [1, 2])
    fedleak = attack(blend=0.3, lookahead=0.2, lr=0.05)
    state = fedleak.start(view, seeded())
    here = state.images.detach().clone().requires_grad_(True)
    (gradient_here,) = torch.autograd.grad(fedleak.objective(view, state, here), [here])
    shift = 0.2 * math.sqrt(here.numel()) * gradient_here / gradient_here.norm()
    ahead = (here.detach() - shift).clamp(*state.box).requires_grad_(True)
    (gradient_ahead,) = torch.autograd.grad(fedleak.objective(view, state, ahead), [ahead])
    expected = here.detach().clone().requires_grad_(True)
    expected.grad = 0.7 * gradient_here + 0.3 * gradient_ahead
    torch.optim.Adam([expected], lr=0.05).step()
    fedleak.step(view, state)
    assert torch.allclose(state.images.detach(), expected.detach().clamp(*state.box), atol=1e-6)


def test_it_lowers_its_partial_distance():
    view, _ = victim(0, [1, 3, 5])
    fedleak = attack(iterations=30)
    state = fedleak.start(view, seeded())
    start = partial_distance(model_gradients(view, state.images.detach(), state.labels, create_graph=False),
                             state.target, state.matched).item()
    result = fedleak.reconstruct(view, seeded())
    assert result.final_loss < start / 2
    final = model_gradients(view, result.images, result.labels, create_graph=False)
    assert result.final_loss == pytest.approx(partial_distance(final, state.target, state.matched).item())


def test_the_pixels_are_projected_into_the_box_after_every_step():
    view, _ = victim(0, [1, 2])
    fedleak = attack(iterations=3, lr=1.0)
    state = fedleak.start(view, seeded())
    for _ in range(3):
        fedleak.step(view, state)
        pixels = view.normalization.denormalize(state.images.detach())
        assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_labels_come_from_the_fedleak_rule_unless_known():
    view, client = victim(0, [4, 0, 7])
    assert torch.equal(attack(iterations=1).reconstruct(view, seeded()).labels, LABEL_RULES["fedleak"].build(view))
    given = (client.labels + 1) % 10
    known = dataclasses.replace(view, known_labels=given)
    assert torch.equal(attack(iterations=1).reconstruct(known, seeded()).labels, given)


@pytest.mark.parametrize("training", [None, FEDAVG], ids=["fedsgd", "fedavg"])
def test_snapshot_restore_and_continue_equals_an_uninterrupted_run(training):
    view, _ = victim(0, [1, 2, 3, 4], training=training)
    fedleak = attack(iterations=6)
    straight = run(fedleak, view, seed=3)
    interrupted = fedleak.start(view, seeded(3))
    for _ in range(3):
        fedleak.step(view, interrupted)
    buffer = io.BytesIO()
    torch.save(fedleak.snapshot(interrupted), buffer)
    buffer.seek(0)
    resumed = fedleak.restore(view, seeded(3), torch.load(buffer, weights_only=True))
    while not fedleak.done(resumed):
        fedleak.step(view, resumed)
    assert resumed.iteration == 6
    assert torch.equal(resumed.images, straight.images)
    assert fedleak.result(view, resumed).final_loss == fedleak.result(view, straight).final_loss


def test_it_attacks_a_multi_step_fedavg_update():
    view, _ = victim(0, [1, 2, 3, 4], training=FEDAVG)
    fedleak = attack(iterations=30)
    state = fedleak.start(view, seeded())
    start = partial_distance(model_gradients(view, state.images.detach(), state.labels, create_graph=False),
                             state.target, state.matched).item()
    result = fedleak.reconstruct(view, seeded())
    assert result.images.shape == (4, 1, 16, 16) and result.iterations == 30
    assert result.final_loss < 0.7 * start


@pytest.mark.parametrize("training_mode", [True, False])
def test_the_attackers_model_is_left_as_given(training_mode):
    view, _ = victim(0, [1, 2])
    view.model.train(training_mode)
    before = copy.deepcopy(view.model.state_dict())
    attack(iterations=2).reconstruct(view, seeded())
    assert view.model.training is training_mode
    assert all(p.grad is None for p in view.model.parameters())
    # In train mode the BN running statistics are not checked: the FedSGD path of the shared
    # simulation (fl.local_training.local_update → loss_gradients) calls the model itself.
    checked = {name for name, _ in view.model.named_parameters()} if training_mode else set(before)
    assert all(torch.equal(before[key], value) for key, value in view.model.state_dict().items() if key in checked)


@pytest.mark.parametrize(("key", "value"), [
    ("iterations", 0), ("lr", 0.0), ("keep", 0.0), ("keep", 1.5), ("blend", -0.1), ("blend", 1.5),
    ("lookahead", 0.0), ("tv", -1e-4), ("activation", -1.0), ("partial", 1), ("label_inference", "joint"),
    ("distance", "l2"), ("distance", "cos"),
])
def test_options_out_of_range_are_rejected(key, value):
    with pytest.raises(InvalidOption):
        parse_options(ATTACKS["fedleak"].options, {key: value})



def test_the_reconstruction_reports_each_terms_magnitude_at_the_start_and_at_the_end():
    view, _ = victim(0, [1, 2])
    fedleak = attack(iterations=6, keep=0.5)
    state = fedleak.start(view, seeded())
    result = fedleak.reconstruct(view, seeded())
    assert list(result.loss_terms) == ["l1", "cosine", "tv", "activation"]
    # the last L1 term written out at the returned images: Σ|g' - g| / Σ|g'| over the matched elements
    gradients = model_gradients(view, result.images, result.labels, create_graph=False)
    a, b = flatten(gradients)[state.matched], flatten(state.target)[state.matched]
    first, last = result.loss_terms["l1"]
    assert last == pytest.approx(((a - b).abs().sum() / a.abs().sum()).item(), rel=1e-5)
    assert last < first


def test_an_update_whose_matched_elements_are_all_zero_is_refused_with_the_reason():
    from evalgrid.attacks.base import NonFiniteLoss
    from evalgrid.fl.threat_model import SharedUpdate

    view, _ = victim(0, [1, 2])
    zeros = SharedUpdate(tuple(torch.zeros_like(g) for g in view.update.gradients), view.update.num_samples)
    with pytest.raises(NonFiniteLoss, match="all zero"):
        build_attack("fedleak", iterations=2).start(dataclasses.replace(view, update=zeros), seeded(0))
    build_attack("fedleak", iterations=2, distance="l1").start(dataclasses.replace(view, update=zeros), seeded(0))
