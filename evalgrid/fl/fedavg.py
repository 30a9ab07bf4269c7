"""FedAvg training of the global model (McMahan et al. 2017) for the training stage: the server
samples K of M clients per round; each runs E local epochs, or U local steps of b samples
(``local_steps``: FedLeak's rounds of one step on one mini-batch), with the victim's own objective
(:func:`evalgrid.fl.local_training.local_update`), optionally defended; the server averages
weights and BatchNorm running statistics, weighted by sample counts (each client's running
statistics are replayed from the batch statistics its local steps saw).

Randomness: every draw derives from (seed, round, client) — the split from (seed, stage, 0, 1),
the round's clients from (seed, stage, t), a client's shuffle, DP noise and defense noise from
(seed, stage, t, purpose, client + 1) — so training 0 → r in one go and resuming from a cached
round r' < r give the same weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from evalgrid.defenses.base import ClientSide
from evalgrid.evaluation.building import STAGE_STREAM, build_model, describe_dataset, load_dataset, stream_seed
from evalgrid.fl.local_training import local_update, shared_pseudo_gradient, trainable
from evalgrid.fl.options import DirichletOptions
from evalgrid.fl.partition import dirichlet_partition, iid_partition, pfllib_dirichlet_partition
from evalgrid.fl.threat_model import ClientData, LocalTraining, SharedUpdate
from evalgrid.grid.cell import Choice

if TYPE_CHECKING:
    from evalgrid.fl.stage import StageRequest

# Sub-streams of STAGE_STREAM (after the round); nonzero, since a trailing 0 in a seed
# sequence gives the same seed as the sequence without it.
_SHUFFLE, _PRIVACY, _DEFENSE, _TORCH = 1, 2, 3, 4


def client_shards(request: StageRequest, train) -> list[np.ndarray]:
    """The federation's split of the training set ``train`` (indices per client), fixed by the seed."""
    federation = request.plan.federation
    assert federation is not None
    rng = np.random.default_rng(stream_seed(request.seed, STAGE_STREAM, 0, 1))
    if federation.split == "iid":
        return iid_partition(len(train), federation.clients, federation.samples_per_client, rng)
    if federation.split == "dirichlet_pfllib":  # the heterogeneity 'dirichlet' at its default least_samples
        return pfllib_dirichlet_partition(np.asarray(train.labels), federation.clients, federation.alpha,
                                          DirichletOptions().least_samples, rng)
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
    shuffle = np.random.default_rng(stream_seed(seed, STAGE_STREAM, round_, _SHUFFLE, client + 1))
    minibatch = min(federation.batch_size, len(shard))
    if federation.local_steps:
        steps = federation.local_steps
        order = local_step_order(shuffle, len(shard), steps, minibatch)
    else:  # E epochs cycle over one permutation
        steps = federation.local_epochs * -(-len(shard) // minibatch)
        order = shuffle.permutation(len(shard))
    pixels, labels = train.batch(shard[order].tolist())
    inputs = train.info.normalization.normalize(pixels.to(device))
    targets = labels.to(device)
    training = LocalTraining("fedavg", steps, minibatch, federation.lr, "train", False)
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
        _, first = np.unique(order, return_index=True)  # the distinct samples the steps used
        used = torch.as_tensor(np.sort(first))
        side = ClientSide(model, ClientData(pixels[used], labels[used]), train.info.normalization, training,
                          _generator(seed, round_, _DEFENSE, client))
        defended = chain.apply(update, side).gradients
        weights = {name: w.detach() - training.lr * g.detach().to(w) for (name, w), g in zip(start.items(), defended)}
    return weights, buffers


def local_step_order(shuffle: np.random.Generator, num_samples: int, steps: int, minibatch: int) -> np.ndarray:
    """The shard positions of ``steps`` mini-batches of ``minibatch`` samples, concatenated (step u
    is the u-th chunk): consecutive chunks of a permutation of the shard; when fewer than
    ``minibatch`` samples are left, they sit this pass out (a data loader's drop_last) and the
    next chunks come from a new permutation drawn from ``shuffle``. So every step has
    ``minibatch`` distinct samples, and FedLeak's 12 steps of 16 are one pass over 200 images."""
    per_pass = num_samples // minibatch
    passes = -(-steps // per_pass)
    order = np.concatenate([shuffle.permutation(num_samples)[:per_pass * minibatch] for _ in range(passes)])
    return order[:steps * minibatch]


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


def initial_model(request: StageRequest, data_root: Path | None) -> nn.Module:
    """The initialised global model (on the CPU), exactly as the cell pipeline builds it."""
    info = describe_dataset(request.dataset, request.resolution, data_root)
    return build_model(request.model, request.init, info, request.seed)
