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
