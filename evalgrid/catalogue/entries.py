"""What the catalogue says of each component: its name, summary, typed options (the paper's
preset as defaults), where its implementation lives, and the facts the rest of evalgrid reads
instead of testing the component's name.

An implementation is named by a string ``"package.module:attribute"`` (a :class:`Ref`) and
imported on first use, so that reading the catalogue (``plan``, ``status``, the result schema)
imports no torch. A plain callable works too; it imports its module when the catalogue loads.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Ref:
    """A callable named ``"module:attribute.path"``, imported when first called; ``keywords``
    are bound to every call (``Ref("m:build", name="convnet")`` is ``partial(m.build, name=...)``)."""

    target: str
    keywords: tuple[tuple[str, Any], ...] = ()

    def resolve(self) -> Callable[..., Any]:
        module_name, _, path = self.target.partition(":")
        if not module_name or not path:
            raise ValueError(f"{self.target!r} is not of the form 'package.module:attribute'")
        found: Any = importlib.import_module(module_name)
        for part in path.split("."):
            found = getattr(found, part)
        return found

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **dict(self.keywords), **kwargs)

    def __repr__(self) -> str:
        bound = "".join(f", {k}={v!r}" for k, v in self.keywords)
        return f"Ref({self.target!r}{bound})"


def ref(target: str, **keywords: Any) -> Ref:
    return Ref(target, tuple(sorted(keywords.items())))


Implementation = Callable[..., Any] | str  # a callable, or "module:attribute" imported on first use


def _as_callable(value: Implementation | None) -> Callable[..., Any] | None:
    return Ref(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class NoOptions:
    """A component without options."""


@dataclass(frozen=True)
class Origin:
    """The installed package that declared a component (``evalgrid`` for the built-ins)."""

    package: str
    version: str

    def __str__(self) -> str:
        return f"{self.package} {self.version}"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """Every component: ``build(options, ...)`` makes the working object (what it is given
    depends on the kind; see each kind's class)."""

    kind = "component"
    name: str
    summary: str
    build: Implementation = field(metadata={"implementation": True})
    options: type = NoOptions
    origin: Origin | None = field(default=None, compare=False)  # set when the catalogue registers it

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.metadata.get("implementation"):
                object.__setattr__(self, f.name, _as_callable(getattr(self, f.name)))
        if not dataclasses.is_dataclass(self.options) or not self.options.__dataclass_params__.frozen:
            raise TypeError(f"{self.kind} {self.name!r}: options must be a frozen dataclass, "
                            f"got {self.options!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}: {self.summary})"


def implementation(default: Any = None) -> Any:
    """A field naming a callable (a string is imported on first use)."""
    return field(default=default, metadata={"implementation": True})


@dataclass(frozen=True, kw_only=True)
class AttackEntry(Entry):
    """``build(options)`` returns a :class:`~evalgrid.attacks.base.SteppedAttack` (``start``,
    ``step``, ``done``, ``result``, ``planned_iterations``: run, checkpointed and resumed step by
    step), which sees only the :class:`~evalgrid.fl.threat_model.ServerView`."""

    kind = "attack"
    # (options, model, info: DatasetInfo) -> None, raising UserError when the attack cannot attack
    # this model (built on the meta device) and data: run and plan --check call it before dispatch.
    preflight: Implementation | None = implementation()
    # The stacked form, (options, views, trials_per_view) -> attack running several trials as
    # lanes at once, with a ``supports(options)`` classmethod; None: trials run one by one.
    stacked: Implementation | None = implementation()
    needs_shared_bn_statistics: bool = False  # the update must carry the victim batch's BN statistics
    # The kind of adversary prior the attack optimises through (a PriorEntry's ``provides``, e.g.
    # "generator"); None: it takes no prior, and a cell giving it one is refused.
    prior: str | None = None


@dataclass(frozen=True, kw_only=True)
class PriorEntry(Entry):
    """The adversary's generative prior, a network the attacks of its kind optimise through.
    ``build(options, info: DatasetInfo)`` returns it untrained, shaped for the victims' images;
    ``train(options, network, images, state)`` fits it on the auxiliary images ([0, 1], the
    victims' shape) in resumable chunks (see :mod:`evalgrid.priors.cache`); a prior without
    ``train`` is loaded instead, by ``load(options, network)`` (a checkpoint: ``preflight(options,
    info)`` checks its file before dispatch)."""

    kind = "prior"
    provides: str  # what the network is, as an attack's ``prior`` names it: "generator", "autoencoder"
    train: Implementation | None = implementation()
    load: Implementation | None = implementation()
    preflight: Implementation | None = implementation()
    path_options: tuple[str, ...] = ()  # options holding paths, relative to the grid file that sets them

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.train is None) == (self.load is None):
            raise TypeError(f"prior {self.name!r}: give exactly one of train (trained by evalgrid) and load "
                            f"(read from a file)")


@dataclass(frozen=True, kw_only=True)
class DefenseEntry(Entry):
    """``build(options)`` returns a :class:`~evalgrid.defenses.base.Defense`."""

    kind = "defense"
    last_in_chain: bool = False  # describes what the server receives after every client-side defense


@dataclass(frozen=True, kw_only=True)
class ModelEntry(Entry):
    """``build(options, info: DatasetInfo)`` returns an ``nn.Module`` sized to the dataset."""

    kind = "model"


@dataclass(frozen=True, kw_only=True)
class InitEntry(Entry):
    """``build(options)`` returns an initializer whose ``apply(model, model_name, model_options)``
    sets the weights; ``preflight(options, model_name, model_options)`` checks files before dispatch."""

    kind = "init"
    preflight: Implementation | None = implementation()
    path_options: tuple[str, ...] = ()  # options holding paths, relative to the grid file that sets them


@dataclass(frozen=True, kw_only=True)
class DatasetEntry(Entry):
    """``build(options, data_root)`` returns an :class:`~evalgrid.data.base.ImageDataset`;
    ``preflight(options, data_root)`` checks its files and returns the split's image count;
    ``describe(options, data_root)`` returns its :class:`DatasetInfo` without loading images.
    Every dataset's options have ``split`` ("train" or "test")."""

    kind = "dataset"
    preflight: Implementation | None = implementation()
    describe: Implementation | None = implementation()


@dataclass(frozen=True, kw_only=True)
class StageEntry(Entry):
    """``build(options)`` returns a :class:`~evalgrid.fl.stage.Stage` (the round, the federation)."""

    kind = "stage"
    trains: bool = False  # the global model comes from FedAvg training (needs the train split)


@dataclass(frozen=True, kw_only=True)
class HeterogeneityEntry(Entry):
    """How the victim's local dataset is drawn from the victims' split when clients are not
    IID (absent: the batch is drawn from the whole split). ``build(options)`` returns an object
    whose ``shards(dataset, participants, batch_size, rng)`` gives the disjoint local datasets
    (index arrays) of the victim and its secure-aggregation peers, the victim's first; each
    one's batch is drawn from its shard. ``preflight(options, split_size, participants,
    batch_size)`` raises UserError when no shard could hold the batch (before dispatch)."""

    kind = "heterogeneity"
    preflight: Implementation | None = implementation()


@dataclass(frozen=True, kw_only=True)
class LocalTrainingEntry(Entry):
    """``build(options, num_samples)`` returns the victim's
    :class:`~evalgrid.fl.threat_model.LocalTraining`."""

    kind = "local training"


@dataclass(frozen=True, kw_only=True)
class LabelRuleEntry(Entry):
    """``build(view)`` returns the batch's labels (B,) inferred from the shared update; attacks
    offer every rule as a value of their ``label_inference`` option."""

    kind = "label inference rule"


MetricKind = Literal["reconstruction", "leakage", "model"]
COLUMN_TYPES = ("float64",)  # what a metric's Parquet column may hold


@dataclass(frozen=True, kw_only=True)
class MetricEntry(Entry):
    """A metric the grid lists by name; its result column is ``name`` (the mean over trials)
    and, when ``per_sample``, ``{name}_per_sample`` ([trial][sample]).

    ``build`` computes it, by kind:

    - ``reconstruction``: ``(batch: MatchedBatch) -> MetricValue`` for each trial;
    - ``leakage``: ``(per_sample: {metric: array [trial][sample]}, options: MetricOptions) -> float``
      over the trials, from the per-sample values of the metrics it ``requires``;
    - ``model``: ``(inputs: ModelMetricInputs) -> float``, of the model or the client's data.
    """

    kind = "metric"
    metric_kind: MetricKind = "reconstruction"
    per_sample: bool = False
    higher_is_better: bool = True
    column_type: str = "float64"
    unit: str = ""  # shown after a value, e.g. "dB"
    requires: tuple[str, ...] = ()  # metrics computed along with this one
    reads: tuple[str, ...] = ()  # fields of [metric_options] that change its value
    required_weights: tuple[str, ...] = ()  # names in evalgrid.models.weights.WEIGHTS, checked at preflight
    min_image_size: int = 1  # smallest image side it accepts
    needs_test_split: bool = False  # it measures on the dataset's test split
    needs_defended_training: bool = False  # it trains the federation with the defense (a trained stage)
    always_recorded: bool = False  # a model metric that costs nothing: recorded even when not listed
    # Measured at every point of a cell's convergence record too (a curve.csv column of its name):
    # a reconstruction metric cheap enough to compute every k attack steps.
    along_curve: bool = False
    utility: bool = False  # it measures the model's usefulness (test accuracy), not leakage: the report's x axis

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.column_type not in COLUMN_TYPES:
            raise TypeError(f"metric {self.name!r}: column_type must be one of {COLUMN_TYPES}")
        if self.per_sample and self.metric_kind != "reconstruction":
            raise TypeError(f"metric {self.name!r}: only reconstruction metrics have per-sample values")
