"""A cell: one fully resolved configuration of the grid, identified by the hash of its
canonical form (same config → same id on any machine, in any factor order)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal

from evalgrid.options import options_dict

CONFIG_SCHEMA = 2  # bump only when the meaning of an existing config changes
CELL_ID_LENGTH = 12  # hex characters of sha256: collisions are checked within a grid


@dataclass(frozen=True)
class Choice:
    """A component picked by name, with every option resolved (preset, overrides, inline)."""

    name: str
    options: Any  # the component's frozen options dataclass
    label: str = field(default="", compare=False)  # as written in the grid, e.g. "ig(tv=0.0)"

    def canonical(self) -> dict[str, Any]:
        return {"name": self.name, "options": options_dict(self.options)}

    def __str__(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class ChoiceChain:
    """Components applied in order, e.g. a composition of defenses; empty means none."""

    steps: tuple[Choice, ...] = ()

    def canonical(self) -> list[dict[str, Any]]:
        return [step.canonical() for step in self.steps]

    def __str__(self) -> str:
        return " + ".join(str(step) for step in self.steps) or "none"


@dataclass(frozen=True)
class CellConfig:
    """Everything that determines what a cell computes. Adding a factor = adding a field here
    and an entry in :data:`evalgrid.grid.factors.FACTORS`."""

    dataset: Choice
    resolution: int  # image side the dataset is resized to; 0: its own
    model: Choice
    init: Choice
    stage: Choice  # the training stage the global model is attacked at
    local_training: Choice  # the victim's local training (FedSGD or FedAvg)
    knows_local_config: bool  # the attacker knows the local training (SoK WST) or not (BST)
    batch_size: int  # N, the victim's private samples
    defense: ChoiceChain
    attack: Choice
    gradient_source: str  # the module whose gradients the attack matches; "all"
    labels: Literal["known", "inferred"]
    trials: int  # independent attack initialisations on the same victim update
    seed: int
    metrics: tuple[str, ...]
    metric_options: Any  # MetricOptions: leak thresholds, IGSA budget (only the listed metrics' enter the id)

    def canonical(self) -> dict[str, Any]:
        return self._body(lambda value: value.canonical(), _relevant_metric_options)

    def _body(self, component: Callable[[Any], Any], metric_options: Callable[[Any, tuple[str, ...]], Any]
              ) -> dict[str, Any]:
        body: dict[str, Any] = {"schema": CONFIG_SCHEMA}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (Choice, ChoiceChain)):
                body[f.name] = component(value)
            elif isinstance(value, tuple):
                body[f.name] = list(value)
            elif f.name == "metric_options":
                body[f.name] = metric_options(value, self.metrics)
            else:
                body[f.name] = value
        return body

    def canonical_json(self) -> str:
        # The components' canonical forms are shared between the cells of a grid (cached):
        # they are only serialised here, never handed out.
        body = self._body(_shared_canonical, _shared_metric_options)
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @cached_property
    def cell_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:CELL_ID_LENGTH]

    def factor_labels(self) -> dict[str, Any]:
        """Readable value of each factor (component labels, plain ints and strings)."""
        return {f.name: str(v) if isinstance(v := getattr(self, f.name), (Choice, ChoiceChain)) else v
                for f in fields(self) if f.name in FACTOR_NAMES}


def _relevant_metric_options(options: Any, metrics: tuple[str, ...]) -> dict[str, Any]:
    from evalgrid.metrics.options import relevant

    return relevant(options, metrics)


@functools.lru_cache(maxsize=4096)
def _cached_canonical(value: Choice | ChoiceChain) -> Any:
    return value.canonical()


def _shared_canonical(value: Choice | ChoiceChain) -> Any:
    try:
        return _cached_canonical(value)
    except TypeError:  # options that cannot be hashed: not cached
        return value.canonical()


_shared_metric_options = functools.lru_cache(maxsize=256)(_relevant_metric_options)

FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in fields(CellConfig) if f.name not in ("metrics", "metric_options"))
