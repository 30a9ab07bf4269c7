"""The factors a grid may vary, each with its parser, default and matcher (for ``exclude``).

A factor value is parsed from TOML into the typed value a :class:`CellConfig` field holds.
Parsers raise :class:`InvalidOption` with a key relative to the value; the grid validator
prefixes the file and key path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evalgrid.cell import Choice
from evalgrid.errors import choices_sentence, did_you_mean
from evalgrid.options import InvalidOption, parse_options
from evalgrid.registry import Registry

REQUIRED = object()
Bases = Mapping[str, Any]  # component name → its options after the grid's [attacks.NAME] overrides
Matcher = Callable[[Any], bool]


@dataclass(frozen=True)
class ComponentFactor:
    """A value is a component name, or an inline table ``{ name = "ig", tv = 0.0 }``."""

    name: str
    summary: str
    registry: Registry
    overrides_section: str  # top-level table of per-component overrides, e.g. "attacks"
    default: Any = REQUIRED
    pandas_dtype: str = "category"

    def parse(self, raw: Any, bases: Bases) -> Choice:
        name, written = self._split(raw)
        options = parse_options(self.registry[name].options, written, base=bases.get(name))
        label = name if not written else f"{name}({', '.join(f'{k}={written[k]!r}' for k in sorted(written))})"
        return Choice(name, options, label)

    def pattern(self, raw: Any, bases: Bases) -> Matcher:
        name, written = self._split(raw)
        schema = self.registry[name].options
        parse_options(schema, written)  # validates option names and types
        return lambda value: value.name == name and parse_options(schema, written, base=value.options) == value.options

    def _split(self, raw: Any) -> tuple[str, dict[str, Any]]:
        if isinstance(raw, str):
            name, written = raw, {}
        elif isinstance(raw, dict):
            written = dict(raw)
            name = written.pop("name", None)
            if not isinstance(name, str):
                raise InvalidOption("name", f"an inline {self.name} table needs a string 'name' key, e.g. "
                                            f"{{ name = {self.registry.names()[0]!r}, ... }}. "
                                            f"{choices_sentence(self.registry.names())}")
        else:
            raise InvalidOption("", f"expected a {self.name} name or an inline table {{ name = ..., option = ... }}, "
                                    f"got {raw!r}. {choices_sentence(self.registry.names())}")
        if name not in self.registry:
            raise InvalidOption("", f"unknown {self.name} {name!r}.{did_you_mean(name, self.registry.names())} "
                                    f"{choices_sentence(self.registry.names())}")
        return name, written


@dataclass(frozen=True)
class IntegerFactor:
    name: str
    summary: str
    minimum: int
    default: Any = REQUIRED
    pandas_dtype: str = "int64"

    def parse(self, raw: Any, bases: Bases) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise InvalidOption("", f"expected an integer, got {raw!r} ({type(raw).__name__}).")
        if raw < self.minimum:
            raise InvalidOption("", f"{raw!r} is out of range: must be >= {self.minimum}.")
        return raw

    def pattern(self, raw: Any, bases: Bases) -> Matcher:
        wanted = self.parse(raw, bases)
        return lambda value: value == wanted


@dataclass(frozen=True)
class ChoiceFactor:
    name: str
    summary: str
    choices: tuple[str, ...]
    default: Any = REQUIRED
    pandas_dtype: str = "category"

    def parse(self, raw: Any, bases: Bases) -> str:
        if raw not in self.choices or not isinstance(raw, str):
            raise InvalidOption("", f"{raw!r} is not a valid {self.name}.{did_you_mean(raw, self.choices)} "
                                    f"{choices_sentence(self.choices)}")
        return raw

    def pattern(self, raw: Any, bases: Bases) -> Matcher:
        wanted = self.parse(raw, bases)
        return lambda value: value == wanted


Factor = ComponentFactor | IntegerFactor | ChoiceFactor


def _build_factors() -> Registry[Factor]:
    from evalgrid.attacks import ATTACKS
    from evalgrid.data import DATASETS
    from evalgrid.models import MODELS

    factors: Registry[Factor] = Registry("factor")
    for factor in (
        ComponentFactor("dataset", "the victim's data", DATASETS, "datasets"),
        ComponentFactor("model", "the global model's architecture", MODELS, "models"),
        ComponentFactor("attack", "the gradient inversion attack and its options", ATTACKS, "attacks"),
        IntegerFactor("batch_size", "images in the victim's batch (B)", minimum=1, default=1),
        ChoiceFactor("labels", "whether the attacker is given the true labels", ("known", "inferred"),
                     default="inferred"),
        IntegerFactor("seed", "seeds the model's weights, the victim batch and the attack", minimum=0, default=0),
    ):
        factors.register(factor.name, factor)
    return factors


FACTORS: Registry[Factor] = _build_factors()
