"""At the client's own images and labels, an attacker that models the client's local training
correctly reproduces the shared update: every gradient distance is zero there, for one local
step and for four, whatever the distance. An attacker that assumes one gradient step (SoK's
BST) matches that gradient against the sum of the U step gradients (W0 − WU)/η: exact for U = 1,
off by the factor U (plus drift) for U = 4, which only the scale-free cosine ignores."""

from __future__ import annotations

import copy

import pytest
import torch

from evalgrid.attacks.base import model_gradients, shared_gradients
from evalgrid.attacks.fedleak import matched_elements, partial_distance
from evalgrid.attacks.gradinversion import half_squared_l2_distance, layerwise_l2_distance
from evalgrid.attacks.losses import cosine_distance, squared_l2_distance
from evalgrid.fl.threat_model import LocalTraining
from test_label_rules import SmallNet, victim

LABELS = [1, 2, 3, 4]


def fedleak_distance(dummy, target):
    return partial_distance(dummy, target, matched_elements(target, 0.5))


DISTANCES = {"dlg squared l2": squared_l2_distance, "ig cosine": cosine_distance,
             "gradinversion euclidean": half_squared_l2_distance, "gradinversion l2": layerwise_l2_distance,
             "fedleak l1 + cosine": fedleak_distance}


def training(steps: int, lr: float) -> LocalTraining:
    # U steps over N = 4 images in mini-batches of 2 (U = 1: one full-batch gradient)
    return LocalTraining("fedavg", steps, 2 if steps > 1 else 4, lr, "eval", False)


def at_truth(steps: int, lr: float, informed: bool):
    true_training = training(steps, lr)
    torch.manual_seed(0)
    model = SmallNet(1, 10, side=16).eval()  # the client's mode (evalgrid's default, bn_mode = "eval")
    view, client = victim(0, LABELS, training=true_training, model=model)
    if not informed:
        view = copy.copy(view)
        object.__setattr__(view, "local_training", true_training.assumed_by_uninformed_attacker(len(LABELS)))
    truth = view.normalization.normalize(client.images)
    return model_gradients(view, truth, client.labels, create_graph=False), shared_gradients(view)


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("name", DISTANCES)
def test_every_distance_is_zero_at_the_truth_for_an_informed_attacker(name, steps):
    dummy, target = at_truth(steps, lr=0.1, informed=True)
    scale = float(sum(t.abs().sum() for t in target))
    assert DISTANCES[name](dummy, target).item() == pytest.approx(0.0, abs=1e-5 * max(1.0, scale))


@pytest.mark.parametrize("name", DISTANCES)
def test_an_uninformed_attacker_is_exact_for_one_step(name):
    dummy, target = at_truth(1, lr=0.1, informed=False)
    assert DISTANCES[name](dummy, target).item() == pytest.approx(0.0, abs=1e-5)


def test_an_uninformed_attacker_matches_one_gradient_against_u_of_them():
    # With a small η the U = 4 steps barely move W: each of the two mini-batches (2 images each)
    # is used twice, so (W0 − WU)/η ≈ 2·(g_a + g_b) = 4·g, g the full-batch mean gradient, the
    # attacker's model of the update. The target is 4 times the attacker's gradient: L1/L2 distances
    # cannot reach zero at the truth, the cosine can (up to the float32 rounding of WU).
    dummy, target = at_truth(4, lr=1e-3, informed=False)
    ratio = torch.sqrt(sum((t.double() ** 2).sum() for t in target) / sum((d.double() ** 2).sum() for d in dummy))
    assert ratio.item() == pytest.approx(4.0, rel=2e-2)
    assert cosine_distance(dummy, target).item() == pytest.approx(0.0, abs=5e-3)
    # the squared L2 distance is (4 − 1)² = 9 times the attacker's own squared gradient norm
    own = squared_l2_distance(dummy, tuple(torch.zeros_like(d) for d in dummy)).item()
    assert squared_l2_distance(dummy, target).item() == pytest.approx(9 * own, rel=5e-2)
