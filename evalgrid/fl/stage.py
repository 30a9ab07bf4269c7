"""The training stage a cell attacks: the global model after r rounds of FedAvg (SoK Sec. 5.1,
FedLeak's "attack stage"), trained once per setup and shared, through an on-disk cache, by all
cells and by concurrent jobs.

FedAvg (McMahan et al. 2017): in round t the server samples K of the M clients; each runs E
local epochs of mini-batch SGD on its shard from the global weights, with the victim's own
objective and code (:func:`evalgrid.fl.local_training.local_update`); the server averages the
clients' weights, weighted by their sample counts. BatchNorm running statistics are averaged
the same way: each client's are replayed from the batch statistics its local steps saw.

Randomness: every draw derives from (seed, round, client) — the split from (seed, stage, 0, 1),
the round's clients from (seed, stage, t), a client's shuffle, DP noise and defense noise from
(seed, stage, t, purpose, client + 1) — so training 0 → r in one go and resuming from a cached
round r' < r give the same weights.

Cache layout: ``cache_dir/<setup_key>/round-<r>.pt`` (state dict) and ``round-<r>.json``
(metadata, test accuracy), both written atomically, the JSON last; an exclusive ``flock`` on
``cache_dir/<setup_key>/.lock`` is held around "look up → train → write", so two processes that
need the same setup train it once. Training to round r resumes from the largest cached round
below r and writes round r, plus the rounds of ``also_rounds`` it passes; :func:`train_stages`
caches all of a grid's rounds, each setup trained once up to its highest round. Round 0 (the ``initial`` stage) is the initialised model:
cheap to rebuild, never written.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from evalgrid.cell import Choice
from evalgrid.defenses.base import ClientSide
from evalgrid.errors import UserError
from evalgrid.fl.local_training import LocalTraining, local_update, shared_pseudo_gradient, trainable
from evalgrid.fl.partition import dirichlet_partition, iid_partition
from evalgrid.metrics.utility import test_accuracy
from evalgrid.options import option
from evalgrid.registry import Component, Registry
from evalgrid.setup import STAGE_STREAM, build_model, describe_dataset, load_dataset, stream_seed
from evalgrid.store.atomic import atomic_write, atomic_write_text, remove_stale_temporaries
from evalgrid.threat_model import ClientData, SharedUpdate

STAGE_SCHEMA = 1  # bump when the training changes what weights a setup gives
LOCK_NAME = ".lock"

# Sub-streams of STAGE_STREAM (after the round); nonzero, since a trailing 0 in a seed
# sequence gives the same seed as the sequence without it.
_SHUFFLE, _PRIVACY, _DEFENSE, _TORCH = 1, 2, 3, 4


@dataclass(frozen=True)
class InitialOptions:
    test_samples: int = option(1000, minimum=0, doc="test images (the first of the test split) the accuracy "
                                                    "is measured on; 0: all")


@dataclass(frozen=True)
class FedAvgStageOptions:
    """Defaults: the SoK's stage experiment (Appendix B II: 5 clients, batch 128, lr 0.01, 10 local
    epochs, IID); FedLeak Sec. 6 uses 100 clients, and α ∈ {0.1, 0.5, 1, 5} for Dirichlet skew."""

    round: int = option(1, minimum=0, doc="r: the model is attacked after r FedAvg rounds (SoK Fig. 7 sweeps 1-100)")
    clients: int = option(5, minimum=1, doc="M clients in the federation (SoK App. B: 5; FedLeak: 100)")
    clients_per_round: int = option(5, minimum=1, doc="K clients sampled each round (SoK App. B: all 5)")
    local_epochs: int = option(10, minimum=1, doc="E local epochs per round (SoK App. B: 10)")
    batch_size: int = option(128, minimum=1, doc="client mini-batch size (SoK App. B: 128)")
    lr: float = option(0.01, positive=True, doc="client learning rate (SoK App. B: 0.01)")
    split: Literal["iid", "dirichlet"] = option("iid", doc="IID shards, or label skew with Dir(alpha) proportions")
    alpha: float = option(0.5, positive=True, doc="Dirichlet concentration; smaller is more skewed (FedLeak Table 6)")
    samples_per_client: int = option(0, minimum=0, doc="shard size; 0: the train split shared evenly by the clients")
    test_samples: int = option(1000, minimum=0, doc="test images (the first of the test split) the accuracy "
                                                    "is measured on; 0: all")


NOT_IN_SETUP = ("round", "test_samples")  # options that do not change a setup's weights


@dataclass(frozen=True)
class Stage:
    """A resolved stage: the round to attack at and, for trained stages, the federation."""

    round: int
    test_samples: int
    federation: FedAvgStageOptions | None = None  # None: the initialised model


def _initial(options: InitialOptions) -> Stage:
    return Stage(0, options.test_samples)


def _fedavg(options: FedAvgStageOptions) -> Stage:
    if options.clients_per_round > options.clients:
        raise UserError(f"stage 'fedavg': clients_per_round = {options.clients_per_round} exceeds "
                        f"clients = {options.clients}.")
    return Stage(options.round, options.test_samples, options)


STAGES: Registry[Component] = Registry("stage")
STAGES.register("initial", Component(
    "initial", InitialOptions, _initial, "the initialised global model, before any training"))
STAGES.register("fedavg", Component(
    "fedavg", FedAvgStageOptions, _fedavg,
    "the global model after `round` FedAvg rounds (K of M clients, E local epochs of SGD, weighted averaging)"))


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
        accuracy's sample count, or the dataset's split option (training always uses the train split)."""
        body = self.canonical()
        body["dataset"]["options"].pop("split", None)
        for name in NOT_IN_SETUP:
            body["stage"]["options"].pop(name, None)
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


# --------------------------------------------------------------------------- the cache


def global_model(request: StageRequest, data_root: Path | None, cache_dir: Path,
                 device: torch.device | str, *, also_rounds: Iterable[int] = ()) -> tuple[nn.Module, StageRecord]:
    """The global model of ``request`` on ``device`` and how it was obtained: read from
    ``cache_dir`` when cached, else trained (resuming from the largest cached round below)
    and written, along with every round of ``also_rounds`` that training passes."""
    started = time.monotonic()
    device = torch.device(device)
    stage = request.plan
    if stage.round == 0:
        model = initial_model(request, data_root).to(device)
        accuracy = _initial_accuracy(request, model, data_root, device)
        return model, StageRecord(0, accuracy, stage.test_samples, request.key(), False, 0,
                                  time.monotonic() - started, 0.0)
    folder = Path(cache_dir) / request.setup_key()
    with _exclusive(folder) as waited:
        started += waited
        remove_stale_temporaries(folder)  # a crashed writer's; only the lock holder writes here
        cached = cached_rounds(folder)
        if stage.round in cached:
            model = _load(request, folder, stage.round, data_root, device)
            accuracy = _cached_accuracy(request, folder, model, data_root, device)
            return model, StageRecord(stage.round, accuracy, stage.test_samples, request.key(), False,
                                      stage.round, time.monotonic() - started, waited)
        start = max((r for r in cached if r < stage.round), default=0)
        model = _load(request, folder, start, data_root, device) if start else \
            initial_model(request, data_root).to(device)
        wanted = {stage.round} | {r for r in also_rounds if start < r < stage.round}
        segment_started = time.monotonic()

        def write(round_: int, network: nn.Module) -> None:
            if round_ in wanted:
                _write_round(request.at_round(round_), folder, network, data_root, device, start,
                             time.monotonic() - segment_started)

        train_global_model(request, data_root, device, model=model, start_round=start, on_round=write)
        accuracy = _cached_accuracy(request, folder, model, data_root, device)
        return model, StageRecord(stage.round, accuracy, stage.test_samples, request.key(), True,
                                  start, time.monotonic() - started, waited)


def train_stages(requests: Iterable[StageRequest], data_root: Path | None, cache_dir: Path,
                 device: torch.device | str) -> list[StageRecord]:
    """Make sure every requested round is cached: per setup, the distinct rounds in increasing
    order, each resuming from the one before, so a setup is trained once up to its highest
    round. One record per distinct request (``key()``), in that order."""
    by_setup: dict[str, dict[int, StageRequest]] = {}
    for request in requests:
        if request.round > 0:
            by_setup.setdefault(request.setup_key(), {}).setdefault(request.round, request)
    records = []
    for rounds in by_setup.values():
        for round_ in sorted(rounds):
            records.append(global_model(rounds[round_], data_root, cache_dir, device)[1])
    return records


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


def initial_model(request: StageRequest, data_root: Path | None) -> nn.Module:
    """The initialised global model (on the CPU), exactly as the cell pipeline builds it."""
    info = describe_dataset(request.dataset, request.resolution, data_root)
    return build_model(request.model, request.init, info, request.seed)


@contextmanager
def _exclusive(folder: Path) -> Iterator[float]:
    """Hold an exclusive flock on the setup's lock file; yields the seconds spent waiting."""
    folder.mkdir(parents=True, exist_ok=True)
    asked = time.monotonic()
    with open(folder / LOCK_NAME, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        waited = time.monotonic() - asked
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _paths(folder: Path, round_: int) -> tuple[Path, Path]:
    return folder / f"round-{round_}.pt", folder / f"round-{round_}.json"


def _load(request: StageRequest, folder: Path, round_: int, data_root: Path | None, device: torch.device) -> nn.Module:
    model = initial_model(request, data_root)
    weights, _ = _paths(folder, round_)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.to(device)


def _test_split(request: StageRequest, data_root: Path | None):
    return load_dataset(request.dataset, request.resolution, data_root, split="test")


def _write_round(request: StageRequest, folder: Path, model: nn.Module, data_root: Path | None,
                 device: torch.device, resumed_from: int, train_seconds: float) -> None:
    weights, meta = _paths(folder, request.round)
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    atomic_write(weights, lambda tmp: torch.save(state, tmp))
    accuracy = test_accuracy(model, _test_split(request, data_root), request.test_samples, device)
    body = {"schema": STAGE_SCHEMA, "key": request.key(), "setup_key": request.setup_key(),
            "round": request.round, "request": request.canonical(), "setup": request.setup(),
            "test_accuracy": {str(request.test_samples): _finite_or_none(accuracy)},
            "resumed_from": resumed_from, "train_seconds": round(train_seconds, 3),
            "device": str(device), "torch": torch.__version__,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_text(meta, json.dumps(body, indent=1, sort_keys=True) + "\n")


def _cached_accuracy(request: StageRequest, folder: Path, model: nn.Module, data_root: Path | None,
                     device: torch.device) -> float:
    """The accuracy stored with the round for this sample count; measured and added to the
    metadata (under the lock) when another count was stored."""
    _, meta = _paths(folder, request.round)
    body = json.loads(meta.read_text(encoding="utf-8"))
    count = str(request.test_samples)
    if count not in body["test_accuracy"]:
        accuracy = test_accuracy(model, _test_split(request, data_root), request.test_samples, device)
        body["test_accuracy"][count] = _finite_or_none(accuracy)
        atomic_write_text(meta, json.dumps(body, indent=1, sort_keys=True) + "\n")
    value = body["test_accuracy"][count]
    return math.nan if value is None else float(value)


_INITIAL_ACCURACY: dict[tuple[str, int, str], float] = {}


def _initial_accuracy(request: StageRequest, model: nn.Module, data_root: Path | None, device: torch.device) -> float:
    """Round 0's accuracy, measured once per process."""
    memo = (request.setup_key(), request.test_samples, str(data_root))
    if memo not in _INITIAL_ACCURACY:
        _INITIAL_ACCURACY[memo] = test_accuracy(model, _test_split(request, data_root), request.test_samples, device)
    return _INITIAL_ACCURACY[memo]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- FedAvg training


def client_shards(request: StageRequest, train) -> list[np.ndarray]:
    """The federation's split of the training set ``train`` (indices per client), fixed by the seed."""
    federation = request.plan.federation
    assert federation is not None
    rng = np.random.default_rng(stream_seed(request.seed, STAGE_STREAM, 0, 1))
    if federation.split == "iid":
        return iid_partition(len(train), federation.clients, federation.samples_per_client, rng)
    return dirichlet_partition(np.asarray(train.labels), federation.clients, federation.samples_per_client,
                               federation.alpha, rng)


def sampled_clients(request: StageRequest, round_: int) -> list[int]:
    """The K clients the server picks in round ``round_`` (1-based), in increasing order."""
    federation = request.plan.federation
    assert federation is not None
    rng = np.random.default_rng(stream_seed(request.seed, STAGE_STREAM, round_))
    return sorted(int(c) for c in rng.choice(federation.clients, size=federation.clients_per_round, replace=False))


def train_global_model(request: StageRequest, data_root: Path | None, device: torch.device | str, *,
                       model: nn.Module | None = None, start_round: int = 0,
                       on_round: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """FedAvg from the global model after ``start_round`` rounds (``model``; default: the
    initialised one) to ``request.round``, in place; ``on_round(t, model)`` after each round t.

    With ``request.defense``, each client runs the chain's DP-SGD (if any) in its local steps
    and applies the chain to its update in pseudo-gradient units (W_0 − W_U)/lr before the
    server sees it; the server then averages W_0 − lr·(defended update). Secure aggregation
    changes nothing here: the server averages the clients anyway."""
    federation = request.plan.federation
    if federation is None:
        raise ValueError(f"stage {request.stage.name!r} is not trained")
    device = torch.device(device)
    model = (model if model is not None else initial_model(request, data_root)).to(device)
    train = load_dataset(request.dataset, request.resolution, data_root, split="train")
    shards = client_shards(request, train)
    chain = _defense_chain(request.defense)
    for round_ in range(start_round + 1, request.round + 1):
        _fedavg_round(request, round_, model, train, shards, chain, device)
        if on_round is not None:
            on_round(round_, model)
    return model


def _fedavg_round(request: StageRequest, round_: int, model: nn.Module, train, shards: list[np.ndarray],
                  chain, device: torch.device) -> None:
    """One round: the sampled clients train from the global weights, the server averages."""
    federation = request.plan.federation
    assert federation is not None
    clients = sampled_clients(request, round_)
    total = sum(len(shards[c]) for c in clients)
    start_weights = {name: w.detach().clone() for name, w in trainable(model).items()}
    start_buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    new_weights: dict[str, Tensor] = {name: torch.zeros_like(w) for name, w in start_weights.items()}
    client_buffers: list[tuple[float, dict[str, Tensor]]] = []
    for client in clients:
        share = len(shards[client]) / total
        weights, buffers = _client_update(request, round_, client, model, train, shards[client], chain, device)
        for name, weight in weights.items():
            new_weights[name] += share * weight
        client_buffers.append((share, buffers))
    with torch.no_grad():
        for name, weight in trainable(model).items():
            weight.copy_(new_weights[name])
        for name, buffer in model.named_buffers():
            buffer.copy_(_average_buffer(start_buffers[name], [(s, b[name]) for s, b in client_buffers]))


def _client_update(request: StageRequest, round_: int, client: int, model: nn.Module, train,
                   shard: np.ndarray, chain, device: torch.device) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """A client's new weights W_U (defended when there is a chain) and BN buffers, from the
    global ``model`` (left unchanged)."""
    federation = request.plan.federation
    assert federation is not None
    seed = request.seed
    order = np.random.default_rng(stream_seed(seed, STAGE_STREAM, round_, _SHUFFLE, client + 1)).permutation(len(shard))
    pixels, labels = train.batch(shard[order].tolist())
    inputs = train.info.normalization.normalize(pixels.to(device))
    targets = labels.to(device)
    minibatch = min(federation.batch_size, len(shard))
    training = LocalTraining("fedavg", federation.local_epochs * -(-len(shard) // minibatch), minibatch,
                             federation.lr, "train", False)
    privacy = None
    if chain is not None:
        privacy = chain.private_gradients(_generator(seed, round_, _PRIVACY, client))
    torch.manual_seed(stream_seed(seed, STAGE_STREAM, round_, _TORCH, client + 1))  # dropout, if a model has it
    model.train()
    with _replaying_bn_statistics(model) as replay:
        summed = local_update(model, inputs, targets, training, create_graph=False, privacy=privacy)
    buffers = replay()
    start = trainable(model)
    if chain is None:
        weights = {name: w.detach() - training.lr * g.detach() for (name, w), g in zip(start.items(), summed)}
    else:
        update = SharedUpdate(shared_pseudo_gradient(model, summed, training), num_samples=len(shard))
        side = ClientSide(model, ClientData(pixels, labels), train.info.normalization, training,
                          _generator(seed, round_, _DEFENSE, client))
        defended = chain.apply(update, side).gradients
        weights = {name: w.detach() - training.lr * g.detach().to(w) for (name, w), g in zip(start.items(), defended)}
    return weights, buffers


def _generator(seed: int, round_: int, purpose: int, client: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, STAGE_STREAM, round_, purpose, client + 1))


def _defense_chain(choices: tuple[Choice, ...]):
    if not choices:
        return None
    from evalgrid.defenses.chain import DefenseChain

    return DefenseChain.from_choices(choices)


def _average_buffer(start: Tensor, weighted: list[tuple[float, Tensor]]) -> Tensor:
    """Float buffers (BN running mean/var): the clients' weighted mean. Integer buffers
    (BN's num_batches_tracked): the largest client's count."""
    if not start.is_floating_point():
        return torch.stack([b for _, b in weighted]).max(dim=0).values
    total = torch.zeros_like(start)
    for share, buffer in weighted:
        total += share * buffer
    return total


@contextmanager
def _replaying_bn_statistics(model: nn.Module) -> Iterator[Callable[[], dict[str, Tensor]]]:
    """``local_update`` works on copies of the buffers and drops them, so record each BN layer's
    batch statistics during the local steps; the yielded function replays PyTorch's running
    update (momentum, or the cumulative mean when momentum is None; unbiased variance) on a copy
    of the model's buffers and returns the client's buffers by name."""
    layers = {name: module for name, module in model.named_modules()
              if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats}
    seen: dict[str, list[tuple[Tensor, Tensor]]] = {name: [] for name in layers}

    def recorder(name: str):
        def hook(module, args):
            x = args[0].detach()
            dims = [0] + list(range(2, x.ndim))
            seen[name].append((x.mean(dims), x.var(dims, unbiased=True)))
        return hook

    handles = [module.register_forward_pre_hook(recorder(name)) for name, module in layers.items()]

    def replay() -> dict[str, Tensor]:
        buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
        for name, module in layers.items():
            prefix = f"{name}." if name else ""
            mean, var = buffers[prefix + "running_mean"], buffers[prefix + "running_var"]
            count = buffers[prefix + "num_batches_tracked"]
            for batch_mean, batch_var in seen[name]:
                count += 1
                momentum = module.momentum if module.momentum is not None else 1.0 / float(count)
                mean.mul_(1 - momentum).add_(momentum * batch_mean.to(mean))
                var.mul_(1 - momentum).add_(momentum * batch_var.to(var))
        return buffers

    try:
        yield replay
    finally:
        for handle in handles:
            handle.remove()
