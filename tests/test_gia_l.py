"""GIA-L (Jeon et al.'s GIAS, as the SoK runs it) passes the tests every attack passes, and does
what its two stages say: the latent search moves z only, keeps the best restart, and the
parameter search moves one copy of the generator per image, never the adversary's prior."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from evalgrid.attacks.base import model_gradients
from evalgrid.attacks.losses import cosine_distance
from attacking import resumed_and_straight, with_generator
from test_attacks import attack, victim

QUICK = {"latent_iterations": 3, "generator_iterations": 2, "restarts": 2}


def run(view, seed: int = 0, **options):
    return attack("gia_l", **{**QUICK, **options}).reconstruct(view, torch.Generator().manual_seed(seed))


def test_the_preset_is_the_soks_two_stages_with_giass_step_sizes():
    options = attack("gia_l").options
    assert (options.latent_iterations, options.generator_iterations) == (400, 6000)
    assert (options.lr, options.generator_lr, options.tv, options.restarts) == (3e-2, 1e-3, 1e-6, 3)


def test_known_labels_are_used_verbatim_and_shapes_and_steps_are_counted():
    view, client = victim(seed=0, batch_size=2)
    given = (client.labels + 1) % 10
    result = run(with_generator(dataclasses.replace(view, known_labels=given)))
    assert torch.equal(result.labels, given)
    assert result.images.shape == (2, 1, 32, 32)
    assert result.iterations == 3 * 2 + 2  # latent steps count once per restart


def test_the_latent_search_moves_z_only_and_keeps_the_best_restart():
    view = with_generator(victim(seed=1, batch_size=2)[0])
    gial = attack("gia_l", **QUICK)
    state = gial.start(view, torch.Generator().manual_seed(3))
    start = state.latents.detach().clone()
    copies = copy.deepcopy(state.generators.state_dict())
    for _ in range(3):
        gial.step(view, state)
    assert not torch.equal(state.latents, start)
    assert all(torch.equal(copies[k], v) for k, v in state.generators.state_dict().items())
    # independently: each restart's cosine distance at its own z, through the prior
    with torch.no_grad():
        pixels = (view.prior(state.latents.detach().reshape(-1, 8)) + 1) / 2
    images = view.normalization.normalize(pixels).reshape(2, 2, 1, 32, 32)
    scores = [cosine_distance(model_gradients(view, images[r], state.labels, create_graph=False),
                              view.update.gradients).item() for r in range(2)]
    assert torch.equal(state.chosen, state.latents.detach()[scores.index(min(scores))])


def test_the_parameter_search_moves_each_images_own_generator_with_z_fixed():
    view = with_generator(victim(seed=1, batch_size=2)[0])
    gial = attack("gia_l", **QUICK)
    state = gial.start(view, torch.Generator().manual_seed(3))
    for _ in range(3):
        gial.step(view, state)
    chosen = state.chosen.clone()
    gial.step(view, state)
    assert torch.equal(state.chosen, chosen)
    for copy_ in state.generators:
        assert any(not torch.equal(a, b) for a, b in zip(copy_.parameters(), view.prior.parameters()))
    assert not torch.equal(next(state.generators[0].parameters()), next(state.generators[1].parameters()))


def test_the_cosine_term_is_zero_at_the_true_images():
    view, client = victim(seed=0, batch_size=2, known_labels=True)
    view = with_generator(view)
    gial = attack("gia_l", **QUICK)
    state = gial.start(view, torch.Generator().manual_seed(0))
    terms = gial.objective_terms(view, state, view.normalization.normalize(client.images), create_graph=False)
    assert terms["cosine"].item() == pytest.approx(0.0, abs=1e-6)


def test_a_run_resumed_across_the_stage_boundary_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    view = with_generator(victim(seed=2, batch_size=2)[0])
    # stopped after the three latent steps and one generator step
    resumed, straight = resumed_and_straight(lambda: attack("gia_l", **QUICK), view, 5, 4, tmp_path)
    torch.testing.assert_close(resumed.images, straight.images, rtol=0, atol=0)
    assert resumed.final_loss == straight.final_loss


def test_an_early_stopped_latent_search_goes_on_to_the_generator_stage_and_resumes_alike(tmp_path):
    view = with_generator(victim(seed=0)[0])
    options = {"latent_iterations": 30, "generator_iterations": 30, "restarts": 1, "lr": 1e-9,
               "generator_lr": 1e-9, "early_stop_window": 2}  # no step improves: each stage stops after 3
    gial = attack("gia_l", **options)
    state = gial.start(view, torch.Generator().manual_seed(0))
    for _ in range(3):
        gial.step(view, state)
    assert not gial.in_latent_search(state) and state.latent_steps == 3
    assert not torch.equal(state.chosen, torch.zeros_like(state.chosen))  # the best z was kept
    gial.step(view, state)
    torch.save(gial.snapshot(state), tmp_path / "state.pt")
    resumed = gial.restore(view, torch.Generator().manual_seed(0), torch.load(tmp_path / "state.pt",
                                                                              weights_only=True))
    while not gial.done(resumed):
        gial.step(view, resumed)
    result = gial.result(view, resumed)
    assert (resumed.latent_steps, resumed.generator_steps, result.iterations) == (3, 3, 6)
    assert result.iterations < gial.planned_iterations() == 60
    straight = run(view, **options)
    torch.testing.assert_close(result.images, straight.images, rtol=0, atol=0)


def test_asked_during_the_latent_search_the_result_is_the_best_restarts_images_and_the_state_is_kept():
    view = with_generator(victim(seed=1, batch_size=2)[0])
    gial = attack("gia_l", **QUICK)
    state = gial.start(view, torch.Generator().manual_seed(3))
    gial.step(view, state)
    latents, chosen = state.latents.detach().clone(), state.chosen.clone()
    result = gial.result(view, state)
    assert torch.equal(state.latents, latents) and torch.equal(state.chosen, chosen)
    with torch.no_grad():
        pixels = (view.prior(latents.reshape(-1, 8)) + 1) / 2
    images = view.normalization.normalize(pixels).reshape(2, 2, 1, 32, 32)
    scores = [cosine_distance(model_gradients(view, images[r], state.labels, create_graph=False),
                              view.update.gradients).item() for r in range(2)]
    torch.testing.assert_close(result.images, images[scores.index(min(scores))], rtol=0, atol=0)
