"""The victim's local training, shared by the client (which runs it) and by the attacker
(which simulates it to match the update).

FedSGD: one gradient of the mean loss over all N samples is shared. FedAvg: U steps of
mini-batch SGD with learning rate η; the client shares W_U and the server turns it into the
pseudo-gradient (W_0 − W_U) / η, the sum of the U mini-batch gradients (SoK Sec. 4.2: the
adversary matches (W_U − W_0)/η up to its sign). Step u uses the u-th (mod ⌈N/b⌉) consecutive
chunk of b samples: the order of the private samples is arbitrary to an attacker who
optimises all dummy samples at once, so no shuffling is simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from evalgrid.fl.objective import mean_loss
from evalgrid.fl.options import BatchNormMode, FedAvgOptions, FedSGDOptions
from evalgrid.fl.threat_model import BatchNormStatistics, LocalTraining


@dataclass(frozen=True)
class PrivateGradients:
    """DP-SGD inside local training (Abadi et al. 2016): each sample's gradient is clipped to
    L2 norm ``clip_norm``, the sum gets N(0, (noise_multiplier·clip_norm)² I) noise, then is
    divided by the mini-batch size."""

    clip_norm: float
    noise_multiplier: float
    generator: torch.Generator  # CPU: the same noise on any device


def fedsgd_training(options: FedSGDOptions, num_samples: int) -> LocalTraining:
    return LocalTraining("fedsgd", 1, num_samples, 1.0, options.bn_mode, options.share_bn_statistics)


def fedavg_training(options: FedAvgOptions, num_samples: int) -> LocalTraining:
    minibatch = min(options.minibatch_size or num_samples, num_samples)
    steps = options.local_steps
    if options.local_epochs:
        steps = options.local_epochs * -(-num_samples // minibatch)
    return LocalTraining("fedavg", steps, minibatch, options.lr, options.bn_mode, options.share_bn_statistics)


def set_bn_mode(model: nn.Module, mode: BatchNormMode) -> None:
    """Put the model in train or eval mode (BatchNorm and dropout follow)."""
    model.train(mode == "train")


def trainable(model: nn.Module) -> dict[str, Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def local_update(model: nn.Module, inputs: Tensor, targets: Tensor, training: LocalTraining | None, *,
                 create_graph: bool = False, privacy: PrivateGradients | None = None) -> tuple[Tensor, ...]:
    """The summed gradients Σ_u ∇L(W_u; batch_u) of the local steps (FedSGD: the one gradient),
    in ``model.parameters()`` order; ``model``'s own weights and buffers are left unchanged.

    ``create_graph`` keeps the graph through every step, so that an attacker can differentiate
    a distance of the result w.r.t. ``inputs`` (SoK's WST). ``privacy`` runs DP-SGD steps.
    """
    weights = trainable(model)
    names = list(weights)
    buffers = {name: b.clone() for name, b in model.named_buffers()}  # BN running stats change in train mode
    if privacy is None and (training is None or training.is_single_gradient(len(inputs))):
        loss = mean_loss(functional_call(model, {**weights, **buffers}, (inputs,)), targets)
        return torch.autograd.grad(loss, list(weights.values()), create_graph=create_graph)
    training = training or LocalTraining("fedsgd", 1, len(inputs), 1.0, "train", False)
    current = dict(weights)
    total: list[Tensor] | None = None
    for batch in training.step_batches(len(inputs)):
        x, y = inputs[batch], targets[batch]
        if privacy is None:
            loss = mean_loss(functional_call(model, {**current, **buffers}, (x,)), y)
            step = torch.autograd.grad(loss, [current[n] for n in names], create_graph=create_graph)
        else:
            step = _private_step(model, current, buffers, names, x, y, privacy, create_graph)
        total = list(step) if total is None else [t + s for t, s in zip(total, step)]
        current = {n: current[n] - training.lr * s for n, s in zip(names, step)}
        if not create_graph:
            current = {n: w.detach().requires_grad_(True) for n, w in current.items()}
    assert total is not None
    return tuple(total)


def _private_step(model: nn.Module, current: dict[str, Tensor], buffers: dict[str, Tensor], names: list[str],
                  x: Tensor, y: Tensor, privacy: PrivateGradients, create_graph: bool) -> tuple[Tensor, ...]:
    """One DP-SGD gradient: per-sample gradients (each sample forwarded alone), clipped, summed,
    noised, divided by the mini-batch size."""
    clipped_sum: list[Tensor] | None = None
    for index in range(len(x)):
        loss = mean_loss(functional_call(model, {**current, **buffers}, (x[index:index + 1],)), y[index:index + 1])
        grads = torch.autograd.grad(loss, [current[n] for n in names], create_graph=create_graph)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).to(grads[0].dtype)
        scale = torch.clamp(privacy.clip_norm / (norm + 1e-12), max=1.0)
        clipped = [g * scale for g in grads]
        clipped_sum = clipped if clipped_sum is None else [a + b for a, b in zip(clipped_sum, clipped)]
    assert clipped_sum is not None
    std = privacy.noise_multiplier * privacy.clip_norm
    noise = [torch.randn(g.shape, generator=privacy.generator, dtype=g.dtype).to(g.device) * std
             for g in clipped_sum]
    return tuple((g + n) / len(x) for g, n in zip(clipped_sum, noise))


def shared_pseudo_gradient(model: nn.Module, summed_gradients: tuple[Tensor, ...],
                           training: LocalTraining) -> tuple[Tensor, ...]:
    """What the FedAvg server computes from the client's float32 weights W_U = W_0 − η·Σg:
    (W_0 − W_U)/η in float64, so the rounding of the shared weights is kept, as in deployment.
    FedSGD shares the gradient itself."""
    if training.algorithm == "fedsgd":
        return tuple(g.detach() for g in summed_gradients)
    out = []
    for weight, gradient in zip(trainable(model).values(), summed_gradients):
        start = weight.detach()
        shared = start - training.lr * gradient.detach()  # the client's new weights, float32
        out.append(((start.double() - shared.double()) / training.lr).to(start.dtype))
    return tuple(out)


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def recording_bn_statistics(model: nn.Module) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Inside the block every forward pass appends, per BatchNorm layer in module order, the
    (mean, biased variance) of its input over all but the channel dimension; differentiable."""
    recorded: list[tuple[Tensor, Tensor]] = []

    def hook(module, args):
        (x,) = args[:1]
        dims = [0] + list(range(2, x.ndim))
        recorded.append((x.mean(dims), x.var(dims, unbiased=False)))

    handles = [layer.register_forward_pre_hook(hook) for layer in batch_norm_layers(model)]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


def client_bn_statistics(model: nn.Module, inputs: Tensor) -> BatchNormStatistics:
    """The BN statistics a client shares: those of its N samples at the global weights W_0."""
    with torch.no_grad(), recording_bn_statistics(model) as recorded:
        buffers = {name: b.clone() for name, b in model.named_buffers()}
        functional_call(model, {**dict(model.named_parameters()), **buffers}, (inputs,))
    return tuple((m.detach(), v.detach()) for m, v in recorded)
