"""Helpers for attack tests: build an attack with option overrides, run it step by step."""

from __future__ import annotations

import torch

from evalgrid.catalogue import ATTACKS
from evalgrid.catalogue.options import parse_options


def build_attack(name: str, **overrides):
    component = ATTACKS[name]
    return component.build(parse_options(component.options, overrides))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run_to_end(attack, view, seed: int = 0):
    """The attack's final state (not just its result), from a seeded start."""
    state = attack.start(view, seeded(seed))
    while not attack.done(state):
        attack.step(view, state)
    return state


def resumed_and_straight(make_attack, view, seed: int, steps: int, directory):
    """(resumed, straight): the result of a run stopped after ``steps`` steps, its snapshot saved
    and loaded (``weights_only``) and continued by a fresh attack, and an uninterrupted run's."""
    straight = make_attack().reconstruct(view, seeded(seed))
    first = make_attack()
    state = first.start(view, seeded(seed))
    for _ in range(steps):
        first.step(view, state)
    torch.save(first.snapshot(state), directory / "state.pt")
    second = make_attack()
    resumed = second.restore(view, seeded(seed), torch.load(directory / "state.pt", weights_only=True))
    while not second.done(resumed):
        second.step(view, resumed)
    return second.result(view, resumed), straight


def assert_seeded(run, view) -> None:
    """The same seed gives the same reconstruction, another seed another."""
    first, second, other = run(view, seed=7), run(view, seed=7), run(view, seed=8)
    assert torch.equal(first.images, second.images) and first.final_loss == second.final_loss
    assert not torch.equal(first.images, other.images)


def assert_nan_update_is_refused(run, view) -> None:
    """A NaN update stops the attack with NonFiniteLoss naming iteration 0."""
    import dataclasses
    import math

    import pytest

    from evalgrid.attacks.base import NonFiniteLoss
    from evalgrid.fl.threat_model import SharedUpdate

    poisoned = SharedUpdate(tuple(g * math.nan for g in view.update.gradients), view.update.num_samples)
    with pytest.raises(NonFiniteLoss, match="iteration 0"):
        run(dataclasses.replace(view, update=poisoned))


def assert_model_and_prior_untouched(run, view) -> None:
    """The attacker's model and prior keep their weights, collect no gradients, and the prior
    stays in eval mode."""
    import copy

    model, prior = copy.deepcopy(view.model.state_dict()), copy.deepcopy(view.prior.state_dict())
    run(view)
    assert all(torch.equal(model[k], v) for k, v in view.model.state_dict().items())
    assert all(torch.equal(prior[k], v) for k, v in view.prior.state_dict().items())
    assert all(p.grad is None for p in [*view.model.parameters(), *view.prior.parameters()])
    assert not view.prior.training


def stop_at_the_nth_step(monkeypatch, *classes):
    """Patch the ``step`` of each attack class so that the n-th step (counted over all of them)
    asks to stop, as a Slurm task's signal handler does; returns ``arm(n)``, which resets the count."""
    import signal

    from evalgrid.evaluation.checkpoint import request_stop

    count = {"steps": 0, "stop_at": None}
    for cls in classes:
        def step(self, view, state, real=cls.step):
            real(self, view, state)
            count["steps"] += 1
            if count["steps"] == count["stop_at"]:
                request_stop(signal.SIGUSR2)

        monkeypatch.setattr(cls, "step", step)
    return lambda n: count.update(steps=0, stop_at=n)


def with_generator(view, seed: int = 0, latent: int = 8):
    """``view`` with an untrained DCGAN generator prior (latent 8, width 4, 1 channel, 32 px),
    its weights drawn from ``seed``."""
    import dataclasses

    from evalgrid.priors.dcgan import Generator

    torch.manual_seed(seed)
    return dataclasses.replace(view, prior=Generator(latent, 4, 1, 32).eval())
