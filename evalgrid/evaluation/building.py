"""Building what a cell's configuration names: the dataset split at the grid's resolution and
the initialised global model. Shared by the cell pipeline and the stage trainer, so that
both start from the same weights for the same seed."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evalgrid.grid.cell import Choice

# Independent random streams per purpose, so that changing one part leaves the others alone.
MODEL_STREAM, BATCH_STREAM, ATTACK_STREAM, STAGE_STREAM, DEFENSE_STREAM, CLIENT_STREAM, IGSA_STREAM = range(7)
PARTITION_STREAM = 7  # the victim's (and its peers') shards under a heterogeneity (fl/client.py client_batches)


def stream_seed(seed: int, *stream: int) -> int:
    """A 32-bit seed for one purpose (and sub-purpose, e.g. a round) of a cell's seed."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


@functools.lru_cache(maxsize=8)
def load_dataset(dataset: Choice, resolution: int, data_root: Path | None, split: str | None = None):
    """The dataset split (``split`` overrides the dataset's own ``split`` option), resized to
    ``resolution`` (0: its native size). Cached per process: cells share the loaded images."""
    from evalgrid.catalogue import DATASETS
    from evalgrid.data.base import at_resolution

    options = dataset.options
    if split is not None and hasattr(options, "split"):
        options = dataclasses.replace(options, split=split)
    loaded = DATASETS[dataset.name].build(options, data_root)
    return at_resolution(loaded, resolution) if resolution else loaded


def describe_dataset(dataset: Choice, resolution: int, data_root: Path | None):
    """The public facts of the dataset at the grid's resolution, without loading its images."""
    from evalgrid.catalogue import DATASETS

    entry = DATASETS[dataset.name]
    info = entry.describe(dataset.options, data_root) if entry.describe else entry.build(dataset.options, data_root).info
    return dataclasses.replace(info, resolution=resolution) if resolution else info


def build_model(model: Choice, init: Choice, info: Any, seed: int) -> nn.Module:
    """The global model before any training: built and initialised from the seed's model
    stream (torch's global RNG, on the CPU), so every process gets the same weights."""
    from evalgrid.catalogue import INITS, MODELS

    torch.manual_seed(stream_seed(seed, MODEL_STREAM))
    network = MODELS[model.name].build(model.options, info)
    INITS[init.name].build(init.options).apply(network, model.name, model.options)
    return network
