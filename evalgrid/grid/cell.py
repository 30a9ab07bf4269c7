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

from evalgrid.catalogue.options import canonical_options

CONFIG_SCHEMA = 2  # bump only when the meaning of an existing config changes
CELL_ID_LENGTH = 12  # hex characters of sha256: collisions are checked within a grid


@dataclass(frozen=True)
class Choice:
    """A component picked by name, with every option resolved (preset, overrides, inline)."""

    name: str
    options: Any  # the component's frozen options dataclass
    label: str = field(default="", compare=False)  # as written in the grid, e.g. "ig(tv=0.0)"
    # The options with paths (the entry's ``path_options``) made absolute when the grid was read;
    # the id keeps them as written (a grid moved with its files keeps its ids). None: no paths.
    located: Any = field(default=None, compare=False, repr=False)

    def resolved(self) -> Choice:
        """The choice as a cell runs it: paths resolved against the grid file's folder."""
        return self if self.located is None else Choice(self.name, self.located, self.label)

    def canonical(self) -> dict[str, Any]:
        # every option, less those marked in_id_at_default=False at their default (evalgrid/catalogue/options.py)
        return {"name": self.name, "options": canonical_options(self.options)}

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
    and an entry in :data:`evalgrid.grid.factors.FACTORS`. A field holding None (a factor that
    is absent, e.g. no prior) is left out of the canonical config, so that the cells of grids
    from before a factor was added keep their ids."""

    dataset: Choice
    resolution: int  # image side the dataset is resized to; 0: its own
    model: Choice
    init: Choice
    stage: Choice  # the training stage the global model is attacked at
    local_training: Choice  # the victim's local training (FedSGD or FedAvg)
    knows_local_config: bool  # the attacker knows the local training (SoK WST) or not (BST)
    batch_size: int  # N, the victim's private samples
    heterogeneity: Choice | None  # how the victim's local dataset is drawn (non-IID); None: batch from the whole split
    defense: ChoiceChain
    attack: Choice
    prior: Choice | None  # the adversary's generative prior, for the attacks that optimise through one
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
        # Field by field, each entry depending on its own value (and the metrics) only: grid
        # expansion serialises every value once for all its cells (canonical_field).
        body: dict[str, Any] = {"schema": CONFIG_SCHEMA}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                body[f.name] = _field_body(f.name, value, self.metrics, component, metric_options)
        return body

    def canonical_json(self) -> str:
        # The components' canonical forms are shared between the cells of a grid (cached):
        # they are only serialised here, never handed out.
        return _dumps(self._body(_shared_canonical, _shared_metric_options))

    @cached_property
    def cell_id(self) -> str:
        return config_id(self.canonical_json())

    @classmethod
    def from_fields(cls, values: dict[str, Any], cell_id: str | None = None) -> CellConfig:
        """A cell of already validated ``values`` (every field), without the frozen dataclass's
        per-field ``__init__`` (a grid may expand to 100,000s of cells); ``cell_id``, when given,
        is ``config_id`` of its canonical JSON, as :func:`canonical_field` writes it."""
        cell = object.__new__(cls)
        cell.__dict__.update(values)
        if cell_id is not None:
            cell.__dict__["cell_id"] = cell_id  # the cached_property's slot
        return cell

    def factor_labels(self) -> dict[str, Any]:
        """Readable value of each factor (component labels, plain ints and strings)."""
        return {name: factor_label(getattr(self, name)) for name in FACTOR_NAMES}


ABSENT_LABEL = "none"  # how tables show an absent factor (a None field)


def factor_label(value: Any) -> Any:
    """A factor value as tables show it: a component's label, "none" when absent, else the
    plain int, bool or string."""
    if value is None:
        return ABSENT_LABEL
    return str(value) if isinstance(value, (Choice, ChoiceChain)) else value


def config_id(canonical_json: str) -> str:
    """The cell id of a canonical JSON config."""
    return hashlib.sha256(canonical_json.encode()).hexdigest()[:CELL_ID_LENGTH]


def canonical_field(name: str, value: Any, metrics: tuple[str, ...]) -> str:
    """``"name":value``, field ``name`` holding ``value`` exactly as ``canonical_json`` writes it.

    ``json.dumps(sort_keys=True)`` writes a dict as its ``"key":value`` items in key order joined
    by commas, so a cell's canonical JSON is ``"{" + ",".join(fragments) + "}"`` with the fields'
    fragments (and :data:`SCHEMA_FIELD`) in :data:`CANONICAL_KEYS` order, the empty fragment of an
    absent field (None) left out."""
    if value is None:
        return ""
    return _dumps({name: _field_body(name, value, metrics, _shared_canonical, _shared_metric_options)})[1:-1]


def _field_body(name: str, value: Any, metrics: tuple[str, ...], component: Callable[[Any], Any],
                metric_options: Callable[[Any, tuple[str, ...]], Any]) -> Any:
    if isinstance(value, (Choice, ChoiceChain)):
        return component(value)
    if isinstance(value, tuple):
        return list(value)
    if name == "metric_options":
        return metric_options(value, metrics)
    return value


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)


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
CANONICAL_KEYS: tuple[str, ...] = tuple(sorted(["schema", *(f.name for f in fields(CellConfig))]))
SCHEMA_FIELD = _dumps({"schema": CONFIG_SCHEMA})[1:-1]
