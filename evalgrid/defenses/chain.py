"""A composition of defenses, applied in the order the grid lists them, e.g.
``defense = [["dpsgd", { name = "soteria", prune_ratio = 0.5 }]]`` (FedLeak Sec. 6.4: DP-SGD in
the local training, then Soteria on the update). An empty chain is no defense."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from evalgrid.defenses.base import ClientSide, Defense, with_gradients
from evalgrid.defenses.composition import check_composition
from evalgrid.fl.local_training import PrivateGradients
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.fl.threat_model import SharedUpdate


class DefenseChain(Defense):
    """Defenses applied in order; the attributes combine those of its members."""

    def __init__(self, defenses: Sequence[Defense] = ()):
        self.defenses = tuple(defenses)
        for index, defense in enumerate(self.defenses):
            if defense.aggregated_clients > 1 and index != len(self.defenses) - 1:
                raise ValueError(f"secure aggregation ({defense!r}) must be the last defense of the chain")

    @classmethod
    def from_choices(cls, choices: Iterable[Any]) -> DefenseChain:
        """Build from resolved grid choices (objects with ``name`` and ``options``), checked."""
        from evalgrid.catalogue import DEFENSES

        choices = list(choices)
        check_composition([choice.name for choice in choices])
        return cls(tuple(DEFENSES[choice.name].build(choice.options) for choice in choices))

    @property
    def aggregated_clients(self) -> int:  # type: ignore[override]
        return math.prod(defense.aggregated_clients for defense in self.defenses)

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        if not self.defenses:
            return with_gradients(update, update.gradients)
        for defense in self.defenses:
            update = defense.apply(update, client)
        return update

    def private_gradients(self, generator: torch.Generator) -> PrivateGradients | None:
        found = [p for p in (d.private_gradients(generator) for d in self.defenses) if p is not None]
        if len(found) > 1:
            raise ValueError("more than one defense asks for DP-SGD in the local training")
        return found[0] if found else None

    def epsilon(self, training: LocalTraining, num_samples: int) -> float | None:
        """The ε of the chain's one privacy mechanism (post-processing keeps it), else None."""
        found = [e for e in (d.epsilon(training, num_samples) for d in self.defenses) if e is not None]
        if len(found) > 1:
            raise ValueError("more than one defense reports an (ε, δ) guarantee")
        return found[0] if found else None

    def __repr__(self) -> str:
        return f"DefenseChain({', '.join(map(repr, self.defenses)) or 'none'})"
