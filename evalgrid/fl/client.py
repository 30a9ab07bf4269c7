"""One FL round as the victim lives it: its local training, its defenses, and (under secure
aggregation) its peers, ending in the update the server receives. Everything here is the
client's side of the threat model; only :meth:`SimulatedRound.server_view` crosses over."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from evalgrid.grid.cell import CellConfig
from evalgrid.data.base import DatasetInfo, ImageDataset
from evalgrid.defenses.base import ClientSide
from evalgrid.defenses.chain import DefenseChain
from evalgrid.catalogue import HETEROGENEITIES, LOCAL_TRAININGS
from evalgrid.fl.local_training import client_bn_statistics, local_update, set_bn_mode, shared_pseudo_gradient
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.evaluation.building import BATCH_STREAM, CLIENT_STREAM, DEFENSE_STREAM, PARTITION_STREAM, stream_seed
from evalgrid.fl.threat_model import ClientData, Normalization, ServerView, SharedUpdate


@dataclass(frozen=True)
class SimulatedRound:
    """The outcome of the victim's round."""

    private: ClientData  # every participant's samples, the victim's first: what the attack is scored against
    update: SharedUpdate  # what the server receives
    training: LocalTraining  # the victim's true local training
    server_model: nn.Module  # W_0 exactly as the server sent it (untouched by the clients)
    epsilon: float  # DP-SGD's ε for this round, NaN without DP-SGD

    def server_view(self, cell: CellConfig, info: DatasetInfo, prior: nn.Module | None = None) -> ServerView:
        """What the attacker gets: its own copy of W_0, the update, public facts, the labels
        and the local training configuration only where the cell's threat model grants them,
        and its own prior."""
        from evalgrid.models.gradient_source import parameter_selection

        model = copy.deepcopy(self.server_model)
        set_bn_mode(model, self.training.bn_mode)  # the mode is part of the protocol, known to the server
        believed = (self.training if cell.knows_local_config
                    else self.training.assumed_by_uninformed_attacker(self.update.num_samples))
        selection = None if cell.gradient_source == "all" else parameter_selection(model, cell.gradient_source)
        return ServerView(model=model, update=self.update, data_shape=(info.channels, info.resolution, info.resolution),
                          num_classes=info.num_classes, normalization=info.normalization,
                          known_labels=self.private.labels.clone() if cell.labels == "known" else None,
                          local_training=believed, gradient_selection=selection, prior=prior)


def client_update(model: nn.Module, data: ClientData, normalization: Normalization, training: LocalTraining,
                  defenses: DefenseChain, generator: torch.Generator) -> SharedUpdate:
    """One client's round on its own copy of the global model: local training (with DP-SGD
    when a defense asks for it), the shared update in gradient units, then the defenses."""
    model = copy.deepcopy(model)
    set_bn_mode(model, training.bn_mode)
    inputs = normalization.normalize(data.images)
    statistics = client_bn_statistics(model, inputs) if training.share_bn_statistics else None
    summed = local_update(model, inputs, data.labels, training, privacy=defenses.private_gradients(generator))
    update = SharedUpdate(shared_pseudo_gradient(model, summed, training), len(data.labels), statistics)
    if not all(is_finite(g) for g in update.gradients):
        raise NonFiniteUpdate(
            "the client's own update is not finite (NaN or inf) before any defense: the model cannot train on "
            f"this data as configured (e.g. BatchNorm over 1×1 feature maps: {len(data.labels)} images of "
            f"{tuple(data.images.shape[-2:])} pixels); use a larger resolution or batch, or bn_mode = 'eval'")
    return defenses.apply(update, ClientSide(model, data, normalization, training, generator))


def is_finite(tensor: torch.Tensor) -> bool:
    """No NaN or inf in ``tensor``: its extremes, which a NaN anywhere makes NaN, are finite (one
    pass without a temporary; ``isfinite(t).all()`` is ~25x slower on a large tensor)."""
    if tensor.numel() == 0:
        return True
    return bool(torch.isfinite(torch.stack(torch.aminmax(tensor.detach()))).all())


class NonFiniteUpdate(ValueError):
    """The victim's local training produced NaN or inf: a setting the model cannot train in."""


def simulate_round(cell: CellConfig, model: nn.Module, dataset: ImageDataset, device: torch.device) -> SimulatedRound:
    """The victim (and its secure-aggregation peers) train on distinct samples
    (:func:`client_batches`); the server receives the (mean) update."""
    defenses = DefenseChain.from_choices(cell.defense.steps)
    clients = defenses.aggregated_clients
    training = LOCAL_TRAININGS[cell.local_training.name].build(cell.local_training.options, cell.batch_size)
    normalization = dataset.info.normalization
    updates, parts = [], []
    for client, indices in enumerate(client_batches(cell, dataset, clients)):
        images, labels = dataset.batch(indices)
        data = ClientData(images.to(device), labels.to(device))
        generator = torch.Generator().manual_seed(stream_seed(cell.seed, DEFENSE_STREAM, CLIENT_STREAM, client))
        updates.append(client_update(model, data, normalization, training, defenses, generator))
        parts.append(data)
    private = ClientData(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
    epsilon = defenses.epsilon(training, cell.batch_size)
    return SimulatedRound(private=private, update=aggregate(updates), training=training, server_model=model,
                          epsilon=math.nan if epsilon is None else float(epsilon))


def client_batches(cell: CellConfig, dataset: ImageDataset, clients: int) -> list[list[int]]:
    """Each participant's batch of ``cell.batch_size`` distinct images (sorted indices into the
    victims' split), the victim's first, disjoint across participants. IID (no heterogeneity):
    drawn from the whole split by the seed's batch stream. Under a heterogeneity: each
    participant's local dataset is its shard of the heterogeneity's partition (the seed's
    partition stream), and its batch is drawn from that shard by the batch stream."""
    import numpy as np

    if cell.heterogeneity is None:
        count = cell.batch_size * clients
        if count > len(dataset):
            raise ValueError(f"the cell needs {count} images ({clients} client(s) × {cell.batch_size}) but the "
                             f"dataset split has {len(dataset)}")
        order = np.random.default_rng(stream_seed(cell.seed, BATCH_STREAM)).choice(len(dataset), size=count,
                                                                                    replace=False)
        return [sorted(order[client * cell.batch_size:(client + 1) * cell.batch_size].tolist())
                for client in range(clients)]
    heterogeneity = HETEROGENEITIES[cell.heterogeneity.name].build(cell.heterogeneity.options)
    shards = heterogeneity.shards(dataset, clients, cell.batch_size,
                                  np.random.default_rng(stream_seed(cell.seed, PARTITION_STREAM)))
    draw = np.random.default_rng(stream_seed(cell.seed, BATCH_STREAM))
    for shard in shards:
        if len(shard) < cell.batch_size:
            raise ValueError(f"heterogeneity {cell.heterogeneity}: a client's local dataset holds {len(shard)} "
                             f"images, fewer than the batch of {cell.batch_size} drawn from it")
    return [sorted(shard[draw.choice(len(shard), size=cell.batch_size, replace=False)].tolist()) for shard in shards]


def aggregate(updates: list[SharedUpdate]) -> SharedUpdate:
    """What secure aggregation reveals: the sample-weighted mean update; BN statistics of the
    union (mean of means, and mean of variances plus the variance of the means)."""
    if len(updates) == 1:
        return updates[0]
    total = sum(u.num_samples for u in updates)
    weights = [u.num_samples / total for u in updates]
    gradients = tuple(sum(w * u.gradients[i] for w, u in zip(weights, updates)) for i in range(len(updates[0].gradients)))
    statistics = None
    if all(u.bn_statistics is not None for u in updates):
        statistics = []
        for layer in range(len(updates[0].bn_statistics)):
            means = [u.bn_statistics[layer][0] for u in updates]
            variances = [u.bn_statistics[layer][1] for u in updates]
            mean = sum(w * m for w, m in zip(weights, means))
            variance = sum(w * (v + (m - mean) ** 2) for w, v, m in zip(weights, variances, means))
            statistics.append((mean, variance))
        statistics = tuple(statistics)
    return SharedUpdate(gradients, total, statistics)
