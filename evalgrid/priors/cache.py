"""The prior cache: each trained prior (:class:`~evalgrid.priors.request.PriorRequest`) trained
once per setup and shared, on disk beside the stage models, by every cell and concurrent job.

Layout: ``cache_dir/priors/<key>/prior.pt`` (the network's state dict) and ``prior.json``
(what it was trained on, how long, its final losses), both written atomically, the JSON last.
The exclusive lock of :mod:`evalgrid.store.lock` is held around "look up → train → write", as
for stage models: the second process that needs the prior waits, then reads the first one's
files. A training in progress saves its whole state (networks, optimisers, random stream,
epoch) to ``progress.pt`` at least once a minute; a training killed and started again resumes
from it and ends in the same weights. Every completed training also writes an event file in
``trainings/`` (as the stage cache does), so tests and benchmarks can count trainings.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalgrid.evaluation.building import describe_dataset, load_dataset
from evalgrid.priors.request import (META_FILE, PRIOR_SCHEMA, PROGRESS_FILE, WEIGHTS_FILE, PriorRequest,
                                     is_cached)
from evalgrid.store.atomic import atomic_write, atomic_write_text, remove_stale_temporaries
from evalgrid.store.lock import exclusive

TRAININGS_DIR = "trainings"


class PriorNotTrained(RuntimeError):
    """A cell needs a prior that is not in the cache and may not train it itself."""


@dataclass(frozen=True)
class PriorRecord:
    """How a cell's prior was obtained."""

    key: str  # the cache key ("" for a prior loaded from the user's file)
    trained_now: bool
    train_seconds: float  # the training's wall time (NaN for a loaded prior)
    waited_seconds: float  # spent waiting for another process's lock


def prior_network(request: PriorRequest, data_root: Path | None, cache_dir: Path, device: torch.device | str,
                  *, train: bool = True) -> tuple[nn.Module, PriorRecord]:
    """The prior network of ``request`` on ``device``, in eval mode: loaded from the user's file,
    read from ``cache_dir``, or (``train``) trained and written there; else
    :class:`PriorNotTrained`."""
    from evalgrid.catalogue import PRIORS

    entry = PRIORS[request.prior.name]
    device = torch.device(device)
    info = describe_dataset(request.victims, request.resolution, data_root)
    network = entry.build(request.prior.options, info)
    if entry.load is not None:
        return entry.load(request.prior.options, network).to(device).eval(), PriorRecord("", False, math.nan, 0.0)
    folder = request.folder(cache_dir)
    with exclusive(folder) as waited:
        remove_stale_temporaries(folder)  # a crashed writer's; only the lock holder writes here
        if not is_cached(folder):
            if not train:
                raise PriorNotTrained(f"{request.describe()} is not in {folder}: the training task that should "
                                      f"have made it did not (see its log with: evalgrid status DIR)")
            _train(request, entry, network, info, folder, data_root, device)
            trained_now = True
        else:
            trained_now = False
        network.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    return network.to(device).eval(), PriorRecord(request.key(), trained_now, float(meta["train_seconds"]), waited)


def auxiliary_images(request: PriorRequest, info: Any, data_root: Path | None) -> torch.Tensor:
    """The prior's training images, (N, C, side, side) in [0, 1] in the victims' shape: the
    auxiliary split at the victims' side, grey replicated to colour or colour averaged to grey
    when the channels differ, the first ``samples`` of them when the prior caps the count."""
    data = load_dataset(request.auxiliary, info.resolution, data_root)
    count = len(data)
    samples = getattr(request.prior.options, "samples", 0)
    if samples:
        count = min(count, samples)
    images, _ = data.batch(list(range(count)))
    if images.shape[1] != info.channels:
        images = images.mean(dim=1, keepdim=True)
        images = images.expand(-1, info.channels, -1, -1).contiguous()
    return images


def _train(request: PriorRequest, entry: Any, network: nn.Module, info: Any, folder: Path,
           data_root: Path | None, device: torch.device) -> None:
    started = time.monotonic()
    images = auxiliary_images(request, info, data_root)
    progress = folder / PROGRESS_FILE
    saved = torch.load(progress, map_location="cpu", weights_only=True) if progress.is_file() else None

    def save(state: dict[str, Any]) -> None:
        atomic_write(progress, lambda tmp: torch.save(state, tmp))

    summary = entry.train(request.prior.options, network, images, saved, save, device)
    seconds = time.monotonic() - started
    state = {name: tensor.detach().cpu().clone() for name, tensor in network.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: torch.save(state, tmp))
    body = {"schema": PRIOR_SCHEMA, "key": request.key(), "request": request.canonical(),
            "auxiliary": request.describe(), "summary": summary, "resumed": saved is not None,
            "train_seconds": round(seconds, 3), "device": str(device), "torch": torch.__version__,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_text(folder / META_FILE, json.dumps(body, indent=1, sort_keys=True, default=str) + "\n")
    progress.unlink(missing_ok=True)
    unique = f"{time.time_ns()}.{os.getpid()}.{secrets.token_hex(4)}"
    event = {"key": request.key(), "resumed": saved is not None, "train_seconds": round(seconds, 3),
             "host": socket.gethostname(), "pid": os.getpid()}
    atomic_write_text(folder / TRAININGS_DIR / f"prior.{unique}.json", json.dumps(event, sort_keys=True) + "\n")


def prior_trainings(cache_dir: Path) -> list[dict[str, Any]]:
    """Every prior training that completed into ``cache_dir``, oldest first."""
    paths = sorted(Path(cache_dir).glob(f"priors/*/{TRAININGS_DIR}/prior.*.json"),
                   key=lambda path: int(path.name.split(".")[1]))
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def train_priors(requests: list[PriorRequest], data_root: Path | None, cache_dir: Path,
                 device: torch.device | str) -> list[PriorRecord]:
    """Make sure every trained prior of ``requests`` is cached (each distinct one once)."""
    seen: dict[str, PriorRecord] = {}
    for request in requests:
        if request.key() not in seen:
            seen[request.key()] = prior_network(request, data_root, cache_dir, device)[1]
    return list(seen.values())
