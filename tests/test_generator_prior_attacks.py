"""What every attack that optimises through a generator prior (its catalogue entry's ``prior``
is "generator": GIA-L, GGL, and any installed one) must do: refuse a view without a prior, be
determined by its seed, stop on a NaN update, and leave the attacker's model and prior as given."""

from __future__ import annotations


import pytest
import torch

from attacking import (assert_model_and_prior_untouched, assert_nan_update_is_refused, assert_seeded,
                       with_generator)
from evalgrid.catalogue import ATTACKS
from test_attacks import attack, victim

GENERATOR_ATTACKS = [name for name in ATTACKS.names() if ATTACKS[name].prior == "generator"]


def quick(name: str) -> dict[str, int]:
    """A few steps: every budget option (…iterations, …evaluations) set to 3."""
    return {key: 3 for key in ATTACKS[name].options.__dataclass_fields__
            if key.endswith(("iterations", "evaluations"))}


def runner(name: str):
    def run(view, seed: int = 0):
        return attack(name, **quick(name)).reconstruct(view, torch.Generator().manual_seed(seed))
    return run


def test_the_papers_generator_attacks_are_among_them():
    assert {"gia_l", "ggl"} <= set(GENERATOR_ATTACKS)


@pytest.mark.parametrize("name", GENERATOR_ATTACKS)
def test_without_a_prior_it_refuses_to_start(name):
    with pytest.raises(ValueError, match="generator prior"):
        runner(name)(victim(seed=0)[0])


@pytest.mark.parametrize("name", GENERATOR_ATTACKS)
def test_the_same_seed_gives_the_same_reconstruction_and_another_seed_another(name):
    assert_seeded(runner(name), with_generator(victim(seed=0)[0]))


@pytest.mark.parametrize("name", GENERATOR_ATTACKS)
def test_a_nan_update_raises_non_finite_loss_naming_the_iteration(name):
    assert_nan_update_is_refused(runner(name), with_generator(victim(seed=0)[0]))


@pytest.mark.parametrize("name", GENERATOR_ATTACKS)
def test_the_attackers_model_and_prior_are_left_as_given(name):
    assert_model_and_prior_untouched(runner(name), with_generator(victim(seed=0)[0]))
