"""The stage-model cache: the global model of a :class:`~evalgrid.fl.stage.StageRequest`,
trained once per setup (fl/fedavg.py) and shared, through an on-disk cache, by all cells and
by concurrent jobs.

Cache layout: ``cache_dir/<setup_key>/round-<r>.pt`` (state dict) and ``round-<r>.json``
(metadata, test accuracy), both written atomically, the JSON last; an exclusive ``flock`` on
``cache_dir/<setup_key>/.lock`` is held around "look up → train → write", so two processes that
need the same setup (the local executor's workers, Slurm tasks on a shared filesystem) train it
once: the second waits, then reads the first one's files. The kernel drops the lock when its
holder dies, so a killed training blocks nobody. On NFS, Linux emulates ``flock`` with byte-range
locks, which hold across machines; a filesystem without locks fails with an error that says so.
Training to round r resumes from the largest cached round below r and writes round r, plus the
rounds of ``also_rounds`` it passes; :func:`train_stages` caches all of a grid's rounds, each
setup trained once up to its highest round. Round 0 (the ``initial`` stage) is the initialised
model: cheap to rebuild, never written.

Every completed training also writes an event, ``cache_dir/<setup_key>/trainings/round-<r>.<ns>.
<pid>.<random>.json`` (what it trained from and to, the rounds it wrote, where and how long):
one new file per training, never overwritten, so :func:`training_events` counts trainings that
actually ran, including any that a broken lock would let run twice for the same round.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalgrid.fl.fedavg import initial_model
from evalgrid.fl.stage import STAGE_SCHEMA, StageNotTrained, StageRecord, StageRequest, cached_rounds
from evalgrid.metrics.utility import test_accuracy
from evalgrid.evaluation.building import load_dataset
from evalgrid.store.atomic import atomic_write, atomic_write_text, remove_stale_temporaries
from evalgrid.store.lock import exclusive

TRAININGS_DIR = "trainings"  # in a setup's folder: one event file per completed training


def global_model(request: StageRequest, data_root: Path | None, cache_dir: Path,
                 device: torch.device | str, *, also_rounds: Iterable[int] = (),
                 initial_accuracy: bool = True, train: bool = True) -> tuple[nn.Module, StageRecord]:
    """The global model of ``request`` on ``device`` and how it was obtained: read from
    ``cache_dir`` when cached, else trained (resuming from the largest cached round below)
    and written, along with every round of ``also_rounds`` that training passes.
    ``initial_accuracy = False`` skips measuring round 0's accuracy (NaN), which needs the test split.
    ``train = False`` raises :class:`StageNotTrained` instead of training (a job that must not train)."""
    started = time.monotonic()
    device = torch.device(device)
    stage = request.plan
    if stage.round == 0:
        model = initial_model(request, data_root).to(device)
        accuracy = _initial_accuracy(request, model, data_root, device) if initial_accuracy else math.nan
        return model, StageRecord(0, accuracy, stage.test_samples, request.key(), False, 0,
                                  time.monotonic() - started, 0.0)
    folder = Path(cache_dir) / request.setup_key()
    with exclusive(folder) as waited:
        started += waited
        remove_stale_temporaries(folder)  # a crashed writer's; only the lock holder writes here
        cached = cached_rounds(folder)
        if stage.round in cached:
            model = _load(request, folder, stage.round, data_root, device)
            accuracy = _cached_accuracy(request, folder, model, data_root, device)
            return model, StageRecord(stage.round, accuracy, stage.test_samples, request.key(), False,
                                      stage.round, time.monotonic() - started, waited)
        if not train:
            raise StageNotTrained(f"the {request.stage} model of {request.model} on {request.dataset} (seed "
                                  f"{request.seed}) is not in {folder}: the stage-training task that should have "
                                  f"made it did not (see its log with: evalgrid status DIR)")
        start = max((r for r in cached if r < stage.round), default=0)
        model = _load(request, folder, start, data_root, device) if start else \
            initial_model(request, data_root).to(device)
        wanted = {stage.round} | {r for r in also_rounds if start < r < stage.round}
        segment_started = time.monotonic()

        def write(round_: int, network: nn.Module) -> None:
            if round_ in wanted:
                _write_round(request.at_round(round_), folder, network, data_root, device, start,
                             time.monotonic() - segment_started)

        from evalgrid.fl.fedavg import train_global_model

        train_global_model(request, data_root, device, model=model, start_round=start, on_round=write)
        _record_training(request, folder, start, sorted(wanted), time.monotonic() - segment_started, device)
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


def _record_training(request: StageRequest, folder: Path, resumed_from: int, rounds_written: list[int],
                     train_seconds: float, device: torch.device) -> None:
    """Write this training's event: a new file whose name no other training can take."""
    unique = f"{time.time_ns()}.{os.getpid()}.{secrets.token_hex(4)}"
    body = {"schema": STAGE_SCHEMA, "key": request.key(), "setup_key": request.setup_key(),
            "round": request.round, "resumed_from": resumed_from, "rounds_written": rounds_written,
            "train_seconds": round(train_seconds, 3), "device": str(device), "host": socket.gethostname(),
            "pid": os.getpid(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_text(folder / TRAININGS_DIR / f"round-{request.round}.{unique}.json",
                      json.dumps(body, indent=1, sort_keys=True) + "\n")


def training_events(cache_dir: Path) -> list[dict[str, Any]]:
    """Every training that ran into ``cache_dir`` (one per completed :func:`global_model` call
    that trained), oldest first: the JSON bodies of the event files, each with its ``path``."""
    paths = sorted(Path(cache_dir).glob(f"*/{TRAININGS_DIR}/round-*.json"),
                   key=lambda path: int(path.name.split(".")[1]))  # round-<r>.<ns>.<pid>.<random>.json
    return [{**json.loads(path.read_text(encoding="utf-8")), "path": str(path)} for path in paths]


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


