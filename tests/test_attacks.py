"""The attacks against the real pipeline: seeded LeNet, digits, the FedSGD client's update."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import pytest
import torch

from evalgrid.attacks.base import NonFiniteLoss
from evalgrid.catalogue import ATTACKS
from evalgrid.attacks.base import model_gradients
from evalgrid.attacks.losses import cosine_distance, squared_l2_distance
from evalgrid.catalogue import DATASETS
from evalgrid.defenses.chain import DefenseChain
from evalgrid.fl.client import client_update
from evalgrid.catalogue import LOCAL_TRAININGS
from evalgrid.catalogue import MODELS
from evalgrid.catalogue.options import InvalidOption, parse_options
from evalgrid.fl.threat_model import ClientData, Reconstruction, ServerView, SharedUpdate


@functools.lru_cache(maxsize=1)
def digits():
    component = DATASETS["digits"]
    return component.build(component.options())


def victim(seed: int, batch_size: int = 1, known_labels: bool = False) -> tuple[ServerView, ClientData]:
    """What a grid cell builds: a seeded LeNet, a random digits batch, the client's update,
    and the attacker's view of it (its own copy of the model)."""
    torch.manual_seed(seed)
    dataset = digits()
    info = dataset.info
    model = MODELS["lenet"].build(MODELS["lenet"].options(), info)
    images, labels = dataset.batch(torch.randperm(len(dataset))[:batch_size].tolist())
    client = ClientData(images, labels)
    fedsgd = LOCAL_TRAININGS["fedsgd"].build(LOCAL_TRAININGS["fedsgd"].options(), batch_size)
    update = client_update(model, client, info.normalization, fedsgd, DefenseChain(()), torch.Generator())
    view = ServerView(model=copy.deepcopy(model), update=update,
                      data_shape=(info.channels, info.resolution, info.resolution), num_classes=info.num_classes,
                      normalization=info.normalization, known_labels=labels.clone() if known_labels else None)
    return view, client


def attack(name: str, **overrides):
    component = ATTACKS[name]
    return component.build(parse_options(component.options, overrides))


def reconstruct(name: str, view: ServerView, seed: int = 0, **overrides) -> Reconstruction:
    return attack(name, **overrides).reconstruct(view, torch.Generator().manual_seed(seed))


def psnr(view: ServerView, inputs: torch.Tensor, client: ClientData) -> float:
    """10·log10(1/MSE) over pixels in [0, 1]."""
    pixels = view.normalization.denormalize(inputs).clamp(0, 1)
    return 10 * math.log10(1 / (pixels - client.images).square().mean().item())


# Short runs that keep this file fast on two CPU cores; the presets are tested separately.
QUICK = {"dlg": {"iterations": 3}, "idlg": {"iterations": 3}, "ig": {"iterations": 5}, "fedleak": {"iterations": 5}}
# LeNet has no BatchNorm, which GradInversion needs: tests/test_gradinversion.py covers it.
ON_LENET = ["dlg", "idlg", "ig", "fedleak"]


def test_the_registry_offers_the_attacks_of_the_papers():
    assert ATTACKS.names() == ["dlg", "idlg", "ig", "gradinversion", "fedleak", "gia_l", "bayes", "rog", "ggl"]


def test_dlg_preset_is_its_reference_code():
    assert dataclasses.asdict(ATTACKS["dlg"].options()) == {
        "iterations": 300, "lr": 1.0, "lbfgs_max_iter": 20, "init": "randn", "label_inference": "joint",
        "early_stop_window": 0, "early_stop_tolerance": 1e-3}


def test_idlg_preset_is_its_reference_code():
    assert dataclasses.asdict(ATTACKS["idlg"].options()) == {
        "iterations": 300, "lr": 1.0, "lbfgs_max_iter": 20, "init": "randn",
        "early_stop_window": 0, "early_stop_tolerance": 1e-3}


def test_ig_preset_is_the_papers_cifar10_setting():
    assert dataclasses.asdict(ATTACKS["ig"].options()) == {
        "iterations": 24_000, "lr": 0.1, "tv": 1e-4, "restarts": 1, "signed": True, "boxed": True,
        "lr_decay": True, "init": "randn", "label_inference": "idlg",
        "early_stop_window": 0, "early_stop_tolerance": 1e-3}


def test_idlg_recovers_a_digit_almost_exactly_with_its_label():
    view, client = victim(seed=0)
    result = reconstruct("idlg", view, iterations=30)
    assert psnr(view, result.images, client) >= 30
    assert torch.equal(result.labels, client.labels)


def test_dlg_with_joint_labels_recovers_a_digit_almost_exactly():
    view, client = victim(seed=1)
    result = reconstruct("dlg", view, seed=1, iterations=30)
    assert psnr(view, result.images, client) >= 30
    assert torch.equal(result.labels, client.labels)


def test_ig_improves_on_its_random_start_and_lowers_the_cosine_distance():
    view, client = victim(seed=0)
    ig = attack("ig", iterations=500)
    start = ig.start(view, torch.Generator().manual_seed(0)).images.detach()
    result = ig.reconstruct(view, torch.Generator().manual_seed(0))
    start_distance = cosine_distance(model_gradients(view, start, result.labels), view.update.gradients)
    assert psnr(view, result.images, client) >= psnr(view, start, client) + 5
    assert result.final_loss < start_distance.item() / 10


def test_ig_keeps_the_pixels_in_the_box():
    view, _ = victim(seed=0)
    pixels = view.normalization.denormalize(reconstruct("ig", view, iterations=20, lr=1.0).images)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_ig_returns_the_best_of_its_restarts():
    view, _ = victim(seed=0)
    one = reconstruct("ig", view, iterations=20, restarts=1)
    best_of_three = reconstruct("ig", view, iterations=20, restarts=3)  # its first trial is `one`'s,
    assert best_of_three.final_loss < one.final_loss  # its second is better and its third worse
    assert best_of_three.iterations == 60


def test_rand_init_starts_from_uniform_pixels():
    view, _ = victim(seed=0)
    start = attack("idlg", init="rand").start(view, torch.Generator().manual_seed(0)).images.detach()
    pixels = view.normalization.denormalize(start)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert pixels.mean().item() == pytest.approx(0.5, abs=0.05)


def test_final_loss_is_the_gradient_match_of_the_returned_images():
    view, _ = victim(seed=0)
    dlg = reconstruct("idlg", view, **QUICK["idlg"])
    ig = reconstruct("ig", view, **QUICK["ig"])
    gradients = model_gradients(view, dlg.images, dlg.labels, create_graph=False)
    assert dlg.final_loss == pytest.approx(squared_l2_distance(gradients, view.update.gradients).item(), rel=1e-5)
    gradients = model_gradients(view, ig.images, ig.labels, create_graph=False)
    assert ig.final_loss == pytest.approx(cosine_distance(gradients, view.update.gradients).item(), rel=1e-5)


@pytest.mark.parametrize("name", ON_LENET)
def test_known_labels_are_used_verbatim(name):
    view, client = victim(seed=0, batch_size=2)
    given = (client.labels + 1) % 10  # not the truth: an attack that infers labels would not return these
    result = reconstruct(name, dataclasses.replace(view, known_labels=given), **QUICK[name])
    assert torch.equal(result.labels, given)


@pytest.mark.parametrize("name", ON_LENET)
def test_the_same_seed_gives_the_same_reconstruction(name):
    view, _ = victim(seed=0)
    first, second = (reconstruct(name, view, seed=7, **QUICK[name]) for _ in range(2))
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert first.final_loss == second.final_loss


@pytest.mark.parametrize("name", ON_LENET)
def test_another_seed_gives_another_start(name):
    view, _ = victim(seed=0)
    assert not torch.equal(reconstruct(name, view, seed=7, **QUICK[name]).images,
                           reconstruct(name, view, seed=8, **QUICK[name]).images)


@pytest.mark.parametrize("name", ON_LENET)
def test_a_nan_update_raises_non_finite_loss_naming_the_iteration(name):
    view, _ = victim(seed=0)
    poisoned = SharedUpdate(tuple(g * math.nan for g in view.update.gradients), view.update.num_samples)
    with pytest.raises(NonFiniteLoss, match="iteration 0"):
        reconstruct(name, dataclasses.replace(view, update=poisoned), **QUICK[name])


@pytest.mark.parametrize("name", ON_LENET)
@pytest.mark.parametrize("training", [True, False])
def test_the_attackers_model_is_left_as_given(name, training):
    view, _ = victim(seed=0)
    view.model.train(training)
    weights = copy.deepcopy(view.model.state_dict())
    reconstruct(name, view, **QUICK[name])
    assert view.model.training is training
    assert all(torch.equal(weights[key], value) for key, value in view.model.state_dict().items())
    assert all(p.grad is None for p in view.model.parameters())


@pytest.mark.parametrize("name", ON_LENET)
def test_reconstructions_have_the_batch_shape_and_count_their_steps(name):
    view, _ = victim(seed=0, batch_size=2)
    result = reconstruct(name, view, **QUICK[name])
    assert result.images.shape == (2, 1, 32, 32)
    assert result.labels.shape == (2,) and result.labels.dtype == torch.int64
    assert result.iterations == QUICK[name]["iterations"]


@pytest.mark.parametrize(("name", "key", "value"), [
    ("dlg", "iterations", 0), ("dlg", "lr", 0.0), ("dlg", "lbfgs_max_iter", 0), ("dlg", "init", "zeros"),
    ("dlg", "label_inference", "oracle"), ("idlg", "iterations", 0), ("idlg", "label_inference", "joint"),
    ("ig", "iterations", 0), ("ig", "lr", -0.1), ("ig", "tv", -1e-4), ("ig", "restarts", 0),
    ("ig", "label_inference", "joint"), ("ig", "signed", 1),
])
def test_options_out_of_range_are_rejected(name, key, value):
    with pytest.raises(InvalidOption):
        parse_options(ATTACKS[name].options, {key: value})


@pytest.mark.parametrize("name", ["dlg", "ig"])
def test_an_attack_resumed_from_a_snapshot_ends_exactly_where_an_uninterrupted_run_does(name, tmp_path):
    view, _ = victim(seed=2, batch_size=2 if name == "ig" else 1)
    options = {"dlg": {"iterations": 3, "lbfgs_max_iter": 2}, "ig": {"iterations": 6, "restarts": 2}}[name]
    uninterrupted = reconstruct(name, view, seed=5, **options)

    first = attack(name, **options)
    state = first.start(view, torch.Generator().manual_seed(5))
    for _ in range(8 if name == "ig" else 2):  # ig: into its second restart
        first.step(view, state)
    torch.save(first.snapshot(state), tmp_path / "state.pt")

    second = attack(name, **options)
    resumed = second.restore(view, torch.Generator().manual_seed(5),
                             torch.load(tmp_path / "state.pt", weights_only=True))
    while not second.done(resumed):
        second.step(view, resumed)
    result = second.result(view, resumed)
    torch.testing.assert_close(result.images, uninterrupted.images, rtol=0, atol=0)
    assert result.final_loss == uninterrupted.final_loss
