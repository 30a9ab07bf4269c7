"""A cell: one fully resolved configuration of the grid, identified by the hash of its
canonical form (same config → same id on any machine, in any factor order)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal

from evalgrid.options import options_dict

CONFIG_SCHEMA = 1  # bump only when the meaning of an existing config changes
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
class CellConfig:
    """Everything that determines what a cell computes. Adding a factor = adding a field here
    and an entry in :data:`evalgrid.grid.factors.FACTORS`."""

    dataset: Choice
    model: Choice
    attack: Choice
    batch_size: int
    labels: Literal["known", "inferred"]
    seed: int
    metrics: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schema": CONFIG_SCHEMA}
        for f in fields(self):
            value = getattr(self, f.name)
            body[f.name] = value.canonical() if isinstance(value, Choice) else (
                list(value) if isinstance(value, tuple) else value)
        return body

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @cached_property
    def cell_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:CELL_ID_LENGTH]

    def factor_labels(self) -> dict[str, Any]:
        """Readable value of each factor (component labels, plain ints and strings)."""
        return {f.name: str(v) if isinstance(v := getattr(self, f.name), Choice) else v
                for f in fields(self) if f.name != "metrics"}


FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in fields(CellConfig) if f.name != "metrics")
