"""The training stage a cell attacks: the global model after r rounds of FedAvg (SoK Sec. 5.1,
FedLeak's "attack stage"), and the requests that name such a model (:class:`StageRequest`:
what determines its weights, hashed into the cache key). Training is in fl/fedavg.py; the
on-disk cache that shares trained models between cells and jobs, in fl/stage_cache.py.
Round 0 (the ``initial`` stage) is the initialised model."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from evalgrid.catalogue import METRICS, STAGES
from evalgrid.grid.cell import Choice
from evalgrid.errors import UserError
from evalgrid.fl.options import FedAvgStageOptions, InitialOptions

STAGE_SCHEMA = 1  # bump when the training changes what weights a setup gives
NOT_IN_SETUP = ("round", "test_samples")  # options that do not change a setup's weights


@dataclass(frozen=True)
class Stage:
    """A resolved stage: the round to attack at and, for trained stages, the federation."""

    round: int
    test_samples: int
    federation: FedAvgStageOptions | None = None  # None: the initialised model


def initial_stage(options: InitialOptions) -> Stage:
    return Stage(0, options.test_samples)


def fedavg_stage(options: FedAvgStageOptions) -> Stage:
    if options.clients_per_round > options.clients:
        raise UserError(f"stage 'fedavg': clients_per_round = {options.clients_per_round} exceeds "
                        f"clients = {options.clients}.")
    if options.split == "dirichlet_pfllib" and options.samples_per_client:
        raise UserError(f"stage 'fedavg': split = 'dirichlet_pfllib' partitions the whole training split into shards "
                        f"of drawn sizes; remove samples_per_client = {options.samples_per_client}.")
    return Stage(options.round, options.test_samples, options)


def _canonical_json(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class StageRequest:
    """Which global model a cell needs. ``defense``: every client applies this chain to its
    update during training (for the defended-utility metric); empty for the attacked model."""

    dataset: Choice
    resolution: int
    model: Choice
    init: Choice
    stage: Choice
    seed: int
    defense: tuple[Choice, ...] = ()

    def __post_init__(self) -> None:
        steps = getattr(self.defense, "steps", self.defense)  # accepts a cell's ChoiceChain
        object.__setattr__(self, "defense", tuple(steps))

    @cached_property
    def plan(self) -> Stage:
        return STAGES[self.stage.name].build(self.stage.options)

    @property
    def round(self) -> int:
        return self.plan.round

    @property
    def test_samples(self) -> int:
        return self.plan.test_samples

    def canonical(self) -> dict[str, Any]:
        """The whole request, round and test_samples included."""
        return {"schema": STAGE_SCHEMA, "dataset": self.dataset.canonical(), "resolution": self.resolution,
                "model": self.model.canonical(), "init": self.init.canonical(), "stage": self.stage.canonical(),
                "seed": self.seed, "defense": [step.canonical() for step in self.defense]}

    def setup(self) -> dict[str, Any]:
        """What determines the weights at every round: the request without the round, the
        accuracy's sample count, the dataset's split option (training always uses the train split),
        or, with ``local_steps``, ``local_epochs``."""
        body = self.canonical()
        body["dataset"]["options"].pop("split", None)
        options = body["stage"]["options"]
        for name in NOT_IN_SETUP:
            options.pop(name, None)
        if options.get("local_steps"):  # counted steps: the epochs are unused
            options.pop("local_epochs", None)
        return body

    def setup_key(self) -> str:
        return hashlib.sha256(_canonical_json(self.setup()).encode()).hexdigest()

    def key(self) -> str:
        """The setup key and the round, as the cache path names them."""
        return f"{self.setup_key()}/round-{self.round}"

    def at_round(self, round_: int) -> StageRequest:
        """The same setup at another round (trained stages only)."""
        if self.plan.federation is None:
            raise ValueError(f"stage {self.stage.name!r} has no rounds")
        options = dataclasses.replace(self.stage.options, round=round_)
        return dataclasses.replace(self, stage=dataclasses.replace(self.stage, options=options))


class StageNotTrained(RuntimeError):
    """A cell needs a stage model that is not in the cache and may not train it itself."""


@dataclass(frozen=True)
class StageRecord:
    """How the global model of a request was obtained."""

    round: int
    test_accuracy: float  # on the first `test_samples` test images
    test_samples: int
    key: str
    trained_now: bool  # this call trained it (False: read from the cache, or round 0)
    resumed_from: int  # the round training started from (= round when nothing was trained)
    seconds: float  # wall seconds this call spent, waiting for the lock excluded
    waited_seconds: float  # wall seconds spent waiting for another process's lock


def stage_request(cell: Any) -> StageRequest:
    """The global model a cell attacks (checkpoint paths as resolved when the grid was read)."""
    return StageRequest(cell.dataset, cell.resolution, cell.model, cell.init.resolved(), cell.stage, cell.seed)


def stage_requests(cell: Any) -> list[StageRequest]:
    """The trained models a cell needs: its stage's (round > 0), and with a metric that trains
    the federation with the defense (``defended_accuracy``) the same FedAvg run with every
    client defended."""
    if not STAGES[cell.stage.name].trains:
        return []
    base = stage_request(cell)
    requests = [base] if base.round > 0 else []
    if cell.defense.steps and any(METRICS[name].needs_defended_training for name in cell.metrics):
        requests.append(dataclasses.replace(base, defense=cell.defense.steps))
    return requests


def planned_trainings(requests: Iterable[StageRequest], cache_dir: Path) -> list[tuple[StageRequest, bool]]:
    """The distinct requests that need a trained model (round > 0), in first-seen order, each
    with whether its round is already in ``cache_dir``."""
    seen: dict[str, tuple[StageRequest, bool]] = {}
    for request in requests:
        if request.round > 0 and request.key() not in seen:
            folder = Path(cache_dir) / request.setup_key()
            seen[request.key()] = (request, request.round in cached_rounds(folder))
    return list(seen.values())


def cached_rounds(folder: Path) -> list[int]:
    """Rounds whose weights and metadata are both in ``folder`` (the JSON is written last)."""
    rounds = []
    for meta in Path(folder).glob("round-*.json"):
        number = meta.stem.removeprefix("round-")
        if number.isdigit() and meta.with_suffix(".pt").is_file():
            rounds.append(int(number))
    return sorted(rounds)
