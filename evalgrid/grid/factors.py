"""The factors a grid may vary, each with its parser, default and matcher (for ``exclude``).

A factor value is parsed from TOML into the typed value a :class:`CellConfig` field holds.
Parsers raise :class:`InvalidOption` with a key relative to the value; the grid validator
prefixes the file and key path. A factor's ``label`` of a TOML value is the label its parsed
value shows (``str``), read without filling the catalogue, which loads on first lookup. A factor's
``dtype`` is the type of its result column and of its ``load`` column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evalgrid.catalogue import (ATTACKS, DATASETS, DEFENSES, HETEROGENEITIES, INITS, LOCAL_TRAININGS, MODELS, PRIORS,
                                STAGES)
from evalgrid.catalogue.options import InvalidOption, parse_options
from evalgrid.catalogue.registry import Registry
from evalgrid.errors import choices_sentence, did_you_mean
from evalgrid.grid.cell import ABSENT_LABEL, Choice, ChoiceChain

REQUIRED = object()
Bases = Mapping[str, Any]  # component name → its options after the grid's [attacks.NAME] overrides
Matcher = Callable[[Any], bool]


@dataclass(frozen=True)
class ComponentFactor:
    """A value is a component name, or an inline table ``{ name = "ig", tv = 0.0 }``."""

    name: str
    summary: str
    registry: Registry  # the catalogue's registry of this kind (filled on its first lookup)
    overrides_section: str  # top-level table of per-component overrides, e.g. "attacks"
    default: Any = REQUIRED
    dtype: str = "category"

    def parse(self, raw: Any, bases: Bases) -> Choice:
        name, written = self._split(raw)
        options = parse_options(self.registry[name].options, written, base=bases.get(name))
        return Choice(name, options, self.label(raw))

    def label(self, raw: Any) -> str:
        """``name``, or ``name(option=value, ...)`` for an inline table (options sorted, values as repr)."""
        name, written = self._shape(raw)
        return name if not written else f"{name}({', '.join(f'{k}={written[k]!r}' for k in sorted(written))})"

    def pattern(self, raw: Any, bases: Bases) -> Matcher:
        name, written = self._split(raw)
        schema = self.registry[name].options
        parse_options(schema, written)  # validates option names and types
        return lambda value: value.name == name and parse_options(schema, written, base=value.options) == value.options

    def _split(self, raw: Any) -> tuple[str, dict[str, Any]]:
        name, written = self._shape(raw)
        if name not in self.registry:
            raise InvalidOption("", f"unknown {self.name} {name!r}.{did_you_mean(name, self.registry.names())} "
                                    f"{choices_sentence(self.registry.names())} `evalgrid components "
                                    f"{self.name}` describes them; a package's own appear once it is installed "
                                    f"in this environment.")
        return name, written

    def _shape(self, raw: Any) -> tuple[str, dict[str, Any]]:
        """The name and the written options of a name or an inline table (not looked up)."""
        if isinstance(raw, str):
            return raw, {}
        if isinstance(raw, dict):
            written = dict(raw)
            name = written.pop("name", None)
            if isinstance(name, str):
                return name, written
            raise InvalidOption("name", f"an inline {self.name} table needs a string 'name' key, e.g. "
                                        f"{{ name = {self.registry.names()[0]!r}, ... }}. "
                                        f"{choices_sentence(self.registry.names())}")
        article = "an" if self.name[0] in "aeiou" else "a"
        raise InvalidOption("", f"expected {article} {self.name} name or an inline table {{ name = ..., "
                                f"option = ... }}, got {raw!r}. {choices_sentence(self.registry.names())}")


@dataclass(frozen=True)
class OptionalComponentFactor(ComponentFactor):
    """A component factor that may be absent: ``"none"`` (its default) is None, which leaves the
    factor out of the cell id (so grids from before the factor keep their ids)."""

    default: Any = ABSENT_LABEL

    def parse(self, raw: Any, bases: Bases) -> Choice | None:
        return None if raw == ABSENT_LABEL else super().parse(raw, bases)

    def label(self, raw: Any) -> str:
        return ABSENT_LABEL if raw == ABSENT_LABEL else super().label(raw)

    def pattern(self, raw: Any, bases: Bases) -> Matcher:
        if raw == ABSENT_LABEL:
            return lambda value: value is None
        matches = super().pattern(raw, bases)
        return lambda value: value is not None and matches(value)


class MatchesEqualValues:
    """``exclude`` patterns of a plain factor: the value, parsed like a factor value, matches itself."""

    def pattern(self, raw: Any, bases: Bases) -> Matcher:
        wanted = self.parse(raw, bases)  # type: ignore[attr-defined]
        return lambda value: value == wanted

    def label(self, raw: Any) -> Any:
        """A plain value is its own label."""
        return raw


@dataclass(frozen=True)
class IntegerFactor(MatchesEqualValues):
    name: str
    summary: str
    minimum: int
    default: Any = REQUIRED
    dtype: str = "int64"
    maximum: int | None = None  # a bound far above any experiment, below what would exhaust memory
    maximum_reason: str = ""

    def parse(self, raw: Any, bases: Bases) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise InvalidOption("", f"expected an integer, got {raw!r} ({type(raw).__name__}).")
        if raw < self.minimum:
            raise InvalidOption("", f"{raw!r} is out of range: must be >= {self.minimum}.")
        if self.maximum is not None and raw > self.maximum:
            raise InvalidOption("", f"{raw!r} is out of range: must be <= {self.maximum:,} ({self.maximum_reason}).")
        return raw


@dataclass(frozen=True)
class ChoiceFactor(MatchesEqualValues):
    name: str
    summary: str
    choices: tuple[str, ...]
    default: Any = REQUIRED
    dtype: str = "category"

    def parse(self, raw: Any, bases: Bases) -> str:
        if raw not in self.choices or not isinstance(raw, str):
            raise InvalidOption("", f"{raw!r} is not a valid {self.name}.{did_you_mean(raw, self.choices)} "
                                    f"{choices_sentence(self.choices)}")
        return raw


@dataclass(frozen=True)
class BoolFactor(MatchesEqualValues):
    name: str
    summary: str
    default: Any = REQUIRED
    dtype: str = "bool"

    def parse(self, raw: Any, bases: Bases) -> bool:
        if not isinstance(raw, bool):
            raise InvalidOption("", f"expected true or false, got {raw!r} ({type(raw).__name__}).")
        return raw


@dataclass(frozen=True)
class NameFactor(MatchesEqualValues):
    """A free-form name checked later against what it names (e.g. a module of the model)."""

    name: str
    summary: str
    default: Any = REQUIRED
    dtype: str = "category"

    def parse(self, raw: Any, bases: Bases) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidOption("", f"expected a non-empty string, got {raw!r}.")
        return raw


@dataclass(frozen=True)
class ChainFactor:
    """A value is ``"none"``, one component (name or inline table), or a list of components
    applied in order, e.g. ``["dpsgd", { name = "soteria", prune_ratio = 0.5 }]``."""

    name: str
    summary: str
    component: ComponentFactor
    check: Callable[[list[str]], None]  # raises InvalidOption for an invalid composition
    default: Any = REQUIRED
    dtype: str = "category"

    @property
    def registry(self) -> Registry:
        return self.component.registry

    @property
    def overrides_section(self) -> str:
        return self.component.overrides_section

    def parse(self, raw: Any, bases: Bases) -> ChoiceChain:
        if raw == "none" or raw == []:
            return ChoiceChain()
        items = raw if isinstance(raw, list) else [raw]
        steps = []
        for index, item in enumerate(items):
            try:
                steps.append(self.component.parse(item, bases))
            except InvalidOption as err:
                where = f"item {index} of the composition: " if isinstance(raw, list) else ""
                raise InvalidOption(err.key, where + err.message) from None
        self.check([step.name for step in steps])
        return ChoiceChain(tuple(steps))

    def label(self, raw: Any) -> str:
        """``none``, or the components' labels joined by `` + ``."""
        if raw == "none" or raw == []:
            return "none"
        return " + ".join(self.component.label(item) for item in (raw if isinstance(raw, list) else [raw]))

    def pattern(self, raw: Any, bases: Bases) -> Matcher:
        """A bare name matches that one defense with any options (like a component factor's);
        ``"none"``, inline tables and lists match exactly."""
        wanted = self.parse(raw, bases)
        if isinstance(raw, str) and wanted.steps:
            return lambda value: [step.name for step in value.steps] == [raw]
        return lambda value: value == wanted


Factor = (ComponentFactor | OptionalComponentFactor | IntegerFactor | ChoiceFactor | BoolFactor | NameFactor
          | ChainFactor)


def _build_factors() -> Registry[Factor]:
    def check_defenses(names: list[str]) -> None:
        from evalgrid.defenses.composition import check_composition

        if "none" in names:
            raise InvalidOption("", "'none' cannot be part of a composition; write defense = \"none\" on its own.")
        check_composition(names)

    factors: Registry[Factor] = Registry("factor")
    for factor in (
        ComponentFactor("dataset", "the victim's data", DATASETS, "datasets"),
        IntegerFactor("resolution", "image side the data is resized to (SoK Fig. 4); 0: the dataset's own",
                      minimum=0, default=0, maximum=4096,
                      maximum_reason="a batch of 64 colour images of that side already takes 12 GB"),
        ComponentFactor("model", "the global model's architecture", MODELS, "models"),
        ComponentFactor("init", "the global model's initial weights", INITS, "inits",
                        default="default"),
        ComponentFactor("stage", "the FL training stage the model is attacked at", STAGES,
                        "stages", default="initial"),
        ComponentFactor("local_training", "the victim's local training: FedSGD or FedAvg",
                        LOCAL_TRAININGS, "local_trainings", default="fedsgd"),
        BoolFactor("knows_local_config", "the attacker knows the local training (SoK WST) or assumes one "
                                         "full-batch step (BST)", default=True),
        IntegerFactor("batch_size", "the victim's private samples (N; FedSGD's batch B)", minimum=1, default=1,
                      maximum=100_000, maximum_reason="the papers attack at most a few hundred samples"),
        OptionalComponentFactor("heterogeneity", "non-IID clients: the victim's local dataset is a shard of a "
                                                 "label, quantity, feature or Dirichlet skewed partition and its "
                                                 "batch is drawn from it (FedLeak Tables 5-6); none: IID, the batch "
                                                 "is drawn from the whole split", HETEROGENEITIES, "heterogeneities"),
        ChainFactor("defense", "post-processing of the update, DP-SGD or secure aggregation; a list composes",
                    ComponentFactor("defense", "", DEFENSES, "defenses"), check_defenses,
                    default="none"),
        ComponentFactor("attack", "the gradient inversion attack and its options", ATTACKS,
                        "attacks"),
        OptionalComponentFactor("prior", "the adversary's generative prior (GIA-L, GGL, ROG), trained on data "
                                         "disjoint from the victims or loaded; none for the other attacks",
                                PRIORS, "priors"),
        NameFactor("gradient_source", "the module whose gradients the attack matches (SoK Table 3); all",
                   default="all"),
        ChoiceFactor("labels", "whether the attacker is given the true labels", ("known", "inferred"),
                     default="inferred"),
        IntegerFactor("trials", "independent attack initialisations on the same update (WSRR)", minimum=1,
                      default=1, maximum=1000, maximum_reason="the papers restart an attack at most 8 times"),
        IntegerFactor("seed", "seeds the model's weights, the victim batch and the attack", minimum=0, default=0,
                      maximum=2**63 - 1, maximum_reason="results store seeds as int64"),
    ):
        factors.register(factor.name, factor)
    return factors


FACTORS: Registry[Factor] = _build_factors()
