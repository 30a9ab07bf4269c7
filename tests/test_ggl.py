"""GGL (Li et al. 2022) passes the tests every attack passes, and does what its paper and code
say: L(u) is the mean over gradient tensors of the squared L2 distance, zero when the victims'
images are the generator's at u; the search moves only its latent vectors; the images returned
are the best candidate's; the budget counts gradient evaluations, whole generations told."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from evalgrid.attacks.cma_es import default_population
from evalgrid.catalogue import LOCAL_TRAININGS
from evalgrid.defenses.chain import DefenseChain
from evalgrid.fl.client import client_update
from evalgrid.fl.threat_model import ClientData
from evalgrid.priors.dcgan import Generator
from attacking import resumed_and_straight, with_generator
from test_attacks import attack, victim

LATENT = 8
QUICK = {"evaluations": 12, "population": 4}


def run(view, seed: int = 0, **options):
    return attack("ggl", **{**QUICK, **options}).reconstruct(view, torch.Generator().manual_seed(seed))


def test_the_preset_is_ggls_cma_run():
    options = attack("ggl").options
    assert (options.evaluations, options.sigma, options.covariance, options.tanh, options.kl) == (
        25_000, 1.0, "full", True, 0.1)
    view = with_generator(victim(seed=0, batch_size=2)[0])
    params = attack("ggl").parameters(view)
    assert params.dimension == 2 * LATENT and params.population == 4 + int(3 * math.log(2 * LATENT))


def test_a_step_is_one_evaluation_and_the_last_partial_generation_is_not_told():
    view, client = victim(seed=0, batch_size=2)
    given = (client.labels + 1) % 10
    ggl = attack("ggl", evaluations=10, population=4)
    view = with_generator(dataclasses.replace(view, known_labels=given))
    state = ggl.start(view, torch.Generator().manual_seed(0))
    steps = 0
    while not ggl.done(state):
        ggl.step(view, state)
        steps += 1
    result = ggl.result(view, state)
    assert (steps, state.evaluations, result.iterations, state.search.generation) == (10, 10, 10, 2)
    assert len(state.losses) == 2  # the third generation's two candidates, evaluated, never told
    assert torch.equal(result.labels, given) and result.images.shape == (2, 1, 32, 32)


def gradients(model, images, labels):
    loss = F.cross_entropy(model(images), labels)
    return torch.autograd.grad(loss, list(model.parameters()))


def test_the_loss_is_the_mean_squared_l2_distance_over_gradient_tensors():
    view = with_generator(victim(seed=1, batch_size=2, known_labels=True)[0])
    ggl = attack("ggl", **QUICK)
    state = ggl.start(view, torch.Generator().manual_seed(0))
    point = torch.randn(2 * LATENT, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        pixels = (view.prior(torch.tanh(point.float()).reshape(2, LATENT)) + 1) / 2
    trial = gradients(view.model, view.normalization.normalize(pixels), view.known_labels)
    expected = sum(((a - b) ** 2).sum() for a, b in zip(trial, view.update.gradients)) / len(trial)
    terms = ggl.objective_terms(view, state, point)
    assert list(terms) == ["gradient_l2"]
    assert terms["gradient_l2"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_without_tanh_the_kl_term_of_ggls_code_is_added():
    view = with_generator(victim(seed=1, known_labels=True)[0])
    ggl = attack("ggl", **QUICK, tanh=False)
    state = ggl.start(view, torch.Generator().manual_seed(0))
    z = torch.linspace(-1.0, 2.0, LATENT, dtype=torch.float64)
    mean, variance = z.mean().item(), z.var(unbiased=False).item()
    kl = -0.5 * (1 + math.log(variance + 1e-10) - mean ** 2 - variance)
    assert ggl.objective_terms(view, state, z)["kl"].item() == pytest.approx(0.1 * kl, rel=1e-5)


def generated_victim(u: torch.Tensor, prior, seed: int = 0):
    """A victim whose private images are the prior's at z = tanh(u), and its update."""
    view, _ = victim(seed=seed, batch_size=2, known_labels=True)
    with torch.no_grad():
        pixels = (prior(torch.tanh(u.float()).reshape(2, LATENT)) + 1) / 2
    client = ClientData(pixels, view.known_labels)
    fedsgd = LOCAL_TRAININGS["fedsgd"].build(LOCAL_TRAININGS["fedsgd"].options(), 2)
    update = client_update(copy.deepcopy(view.model), client, view.normalization, fedsgd, DefenseChain(()),
                           torch.Generator())
    return dataclasses.replace(view, update=update, prior=prior)


def test_the_distance_is_zero_at_the_latents_that_made_the_victims_images():
    torch.manual_seed(0)
    prior = Generator(LATENT, 4, 1, 32).eval()
    truth = torch.randn(2 * LATENT, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    view = generated_victim(truth, prior)
    ggl = attack("ggl", **QUICK)
    state = ggl.start(view, torch.Generator().manual_seed(0))
    assert ggl.objective_terms(view, state, truth)["gradient_l2"].item() == pytest.approx(0.0, abs=1e-12)
    assert ggl.objective_terms(view, state, truth + 0.5)["gradient_l2"].item() > 1e-8


def test_the_result_is_the_best_candidate_evaluated():
    view = with_generator(victim(seed=2, batch_size=2)[0])
    ggl = attack("ggl", evaluations=14, population=4)
    seen = []
    measure = ggl.objective_terms

    def recording(view_, state_, point):
        terms = measure(view_, state_, point)
        seen.append((float(sum(terms.values())), point.clone()))
        return terms

    ggl.objective_terms = recording
    result = ggl.reconstruct(view, torch.Generator().manual_seed(1))
    losses = [loss for loss, _ in seen[:14]]
    best = min(range(14), key=losses.__getitem__)
    assert len(seen) == 15  # 14 candidates, then the result's own evaluation
    assert result.final_loss == losses[best]
    torch.testing.assert_close(seen[-1][1], seen[best][1], rtol=0, atol=0)
    assert result.loss_terms["gradient_l2"][1] == losses[best]


def test_the_search_mean_descends_towards_the_latents_that_made_the_victims_images():
    torch.manual_seed(0)
    truth = 0.5 * torch.randn(2 * LATENT, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    view = generated_victim(truth, Generator(LATENT, 4, 1, 32).eval())
    ggl = attack("ggl", evaluations=480, population=8)
    state = ggl.start(view, torch.Generator().manual_seed(2))
    start = state.search.mean.clone()
    while not ggl.done(state):
        ggl.step(view, state)
    loss = lambda point: float(sum(ggl.objective_terms(view, state, point).values()))  # noqa: E731
    assert loss(state.search.mean) < 0.3 * loss(start)


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path, covariance):
    view = with_generator(victim(seed=2, batch_size=2)[0])
    options = {"evaluations": 30, "population": 4, "covariance": covariance}
    # stopped in the middle of the second generation (after 6 of its 2 x 4 candidates)
    resumed, straight = resumed_and_straight(lambda: attack("ggl", **options), view, 5, 6, tmp_path)
    torch.testing.assert_close(resumed.images, straight.images, rtol=0, atol=0)
    assert resumed.final_loss == straight.final_loss and resumed.iterations == 30


def test_the_default_population_follows_the_search_dimension():
    view = with_generator(victim(seed=0, batch_size=4)[0])
    assert attack("ggl").parameters(view).population == default_population(4 * LATENT) == 14
