"""The victim's local training and the attacker's simulation of it (SoK Sec. 4.2)."""

from __future__ import annotations

import dataclasses

import copy

import pytest
import torch
from torch import nn

from evalgrid.catalogue import ATTACKS
from evalgrid.catalogue import LOCAL_TRAININGS
from evalgrid.fl.local_training import PrivateGradients, client_bn_statistics, local_update, shared_pseudo_gradient
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.fl.objective import loss_gradients
from evalgrid.catalogue.options import parse_options


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 5))


def batch(n: int = 6):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 5, (n,), generator=generator)


def fedavg(steps: int, minibatch: int, lr: float = 0.05) -> LocalTraining:
    return LocalTraining("fedavg", steps, minibatch, lr, "train", False)


def manual_sgd(model: nn.Module, x, y, training: LocalTraining) -> list[torch.Tensor]:
    """The client's training written the plain way: an optimiser on a copy of the model."""
    model = copy.deepcopy(model)
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=training.lr)
    for part in training.step_batches(len(x)):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[part]), y[part]).backward()
        optimizer.step()
    return [(s - p.detach()) / training.lr for s, p in zip(start, model.parameters())]


def test_fedsgd_shares_the_gradient_of_the_mean_loss():
    model, (x, y) = small_model(), batch()
    training = LOCAL_TRAININGS["fedsgd"].build(LOCAL_TRAININGS["fedsgd"].options(), len(x))
    for got, expected in zip(local_update(model, x, y, training), loss_gradients(model, x, y)):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("steps,minibatch", [(1, 6), (3, 6), (3, 2), (4, 4)])
def test_fedavg_update_is_plain_sgd_from_the_pseudo_gradient(steps, minibatch):
    model, (x, y) = small_model(), batch()
    training = fedavg(steps, minibatch)
    summed = local_update(model, x, y, training)
    shared = shared_pseudo_gradient(model, summed, training)
    for got, expected in zip(shared, manual_sgd(model, x, y, training)):
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)


def test_local_training_leaves_the_model_untouched():
    model, (x, y) = small_model(), batch()
    before = copy.deepcopy(model.state_dict())
    local_update(model, x, y, fedavg(3, 2))
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name])


def test_epochs_set_the_number_of_steps_from_the_minibatches():
    options = parse_options(LOCAL_TRAININGS["fedavg"].options, {"local_epochs": 2, "minibatch_size": 4})
    training = LOCAL_TRAININGS["fedavg"].build(options, 10)
    assert training.steps == 6 and training.minibatch_size == 4
    assert [s.stop - s.start for s in training.step_batches(10)] == [4, 4, 2, 4, 4, 2]


def test_the_informed_attacker_reproduces_the_update_from_the_true_data():
    """SoK's WST: simulating the known local training on the private batch gives the update."""
    model, (x, y) = small_model(), batch()
    training = fedavg(3, 2)
    shared = shared_pseudo_gradient(model, local_update(model, x, y, training), training)
    simulated = local_update(copy.deepcopy(model), x.clone().requires_grad_(True), y, training, create_graph=True)
    for got, expected in zip(simulated, shared):
        torch.testing.assert_close(got.detach(), expected, rtol=1e-3, atol=1e-4)


def test_the_uninformed_attacker_assumes_one_full_batch_step():
    training = fedavg(3, 2).assumed_by_uninformed_attacker(6)
    assert training.steps == 1 and training.minibatch_size == 6 and training.is_single_gradient(6)


def test_the_simulation_is_differentiable_through_every_step():
    model, (x, y) = small_model(), batch()
    dummy = x.clone().requires_grad_(True)
    update = local_update(model, dummy, y, fedavg(3, 2), create_graph=True)
    (gradient,) = torch.autograd.grad(sum(u.square().sum() for u in update), dummy)
    assert gradient.abs().sum() > 0


def test_dp_sgd_clips_every_sample_gradient():
    model, (x, y) = small_model(), batch()
    model.eval()  # one sample per forward: BN uses running statistics
    privacy = PrivateGradients(clip_norm=1e-3, noise_multiplier=0.0, generator=torch.Generator().manual_seed(0))
    update = local_update(model, x, y, fedavg(1, 6), privacy=privacy)
    assert torch.sqrt(sum(u.square().sum() for u in update)) <= 1e-3 + 1e-7


def test_shared_bn_statistics_are_the_batch_moments_at_each_layer():
    model, (x, _) = small_model(), batch()
    (mean, var), = client_bn_statistics(model, x)
    features = model[0](x)
    torch.testing.assert_close(mean, features.mean((0, 2, 3)))
    torch.testing.assert_close(var, features.var((0, 2, 3), unbiased=False))


def multi_step_view():
    """A tiny BatchNorm network's update of 4 images after 2 local steps, and the attacker's view."""
    from evalgrid.fl.threat_model import Normalization, ServerView, SharedUpdate

    torch.manual_seed(0)  # 16x16 images: the side of the smallest prior (ROG's refiner)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 16 * 16, 5))
    x, y = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3])
    training = fedavg(2, 2)
    update = SharedUpdate(shared_pseudo_gradient(model, local_update(model, x, y, training), training), 4,
                          client_bn_statistics(model, x))
    return ServerView(model=copy.deepcopy(model), update=update, data_shape=(1, 16, 16), num_classes=5,
                      normalization=Normalization((0.0,), (1.0,)), known_labels=y, local_training=training)


def quick_attack(name: str, steps: int = 2):
    options = ATTACKS[name].options
    quick = {key: steps for key in options.__dataclass_fields__ if key.endswith(("iterations", "evaluations"))}
    return ATTACKS[name].build(parse_options(options, quick))


def test_every_attack_runs_against_a_multi_step_update():
    view = multi_step_view()
    for name in ATTACKS.names():
        attacked = dataclasses.replace(view, prior=a_prior(ATTACKS[name].prior, view))
        result = quick_attack(name).reconstruct(attacked, torch.Generator().manual_seed(0))
        assert result.images.shape == (4, 1, 16, 16)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_asking_for_the_result_midway_changes_nothing(name):
    """What a convergence record relies on: ``result`` between two steps leaves the run alone."""
    view = multi_step_view()
    attacked = dataclasses.replace(view, prior=a_prior(ATTACKS[name].prior, view))
    straight = quick_attack(name, 3).reconstruct(attacked, torch.Generator().manual_seed(0))
    attack = quick_attack(name, 3)
    state = attack.start(attacked, torch.Generator().manual_seed(0))
    while not attack.done(state):
        attack.step(attacked, state)
        attack.result(attacked, state)
    probed = attack.result(attacked, state)
    torch.testing.assert_close(probed.images, straight.images, rtol=0, atol=0)
    assert probed.final_loss == straight.final_loss


def a_prior(kind, view):
    """An untrained prior of the kind an attack optimises through (None for none), at its preset."""
    from evalgrid.catalogue import PRIORS
    from evalgrid.data.base import DatasetInfo

    if kind is None:
        return None
    entry = next(PRIORS[name] for name in PRIORS if PRIORS[name].provides == kind and PRIORS[name].train)
    channels, side, _ = view.data_shape
    info = DatasetInfo("test", channels, side, view.num_classes, view.normalization)
    return entry.build(entry.options(), info).eval()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_client_whose_update_is_not_finite_is_refused_before_any_defense(bad):
    from evalgrid.defenses.chain import DefenseChain
    from evalgrid.fl.client import NonFiniteUpdate, client_update
    from evalgrid.fl.threat_model import ClientData, Normalization

    model = small_model()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = bad
    x, y = batch()
    with pytest.raises(NonFiniteUpdate, match="not finite"):
        client_update(model, ClientData(x, y), Normalization((0.0,), (1.0,)), fedavg(1, 6), DefenseChain(()),
                      torch.Generator())


def test_a_finite_update_is_accepted_and_an_empty_tensor_is_finite():
    from evalgrid.fl.client import is_finite

    assert is_finite(torch.randn(1000)) and is_finite(torch.empty(0))
    assert not is_finite(torch.tensor([1.0, float("nan")])) and not is_finite(torch.tensor([-float("inf")]))
