"""Soteria (Sun et al., CVPR 2021), with FedLeak's pruning ratio 0.5 (Sec. 6.4).

Soteria perturbs the data representation r (the input of the model's last fully connected
layer) where it tells most about the input X: it prunes the features that maximise
‖r_i (∂r_i/∂X)⁻¹‖, approximated by the ratio

    s_i = ‖r_i‖ / ‖∂r_i/∂X‖,

and the client shares the gradient the pruned representation would give. For the last layer
y = W r + c that is the gradient of W with the pruned features' columns set to zero,
∂L/∂W[:, i] = 0; every other gradient is left as it was (as in the official code, which
multiplies only the fully connected weight gradient by the mask).

Here X is the client's whole batch of N samples: ‖r_i‖ is the L2 norm of feature i over the
batch, ‖∂r_i/∂X‖ the Frobenius norm of the Jacobian rows ∂r_{b,i}/∂x_b (one backward pass
per feature, as in the official code). The ⌈prune_ratio·d⌉ features of largest s_i are
pruned (ties to the lower index; 0/0 counts as 0). The representation is computed at the
global weights W_0, in the mode the client trains in (BatchNorm in train mode couples the
samples: then row b is ∂(Σ_b' r_b'i)/∂x_b, which is what the official code computes too).

Paper vs official code (jeremy313/Soteria): the code scores each sample by the inverse ratio
‖∂r_{b,i}/∂x_b‖ / r_{b,i}, sums it over the batch and prunes the features below the
prune-ratio percentile. For one sample with r > 0 that selects the same features as s_i; for
larger batches we follow the paper's ratio, treating the batch as one X. The code applies the
mask at every local step; here it is applied once to the shared update (the same thing for
FedSGD and one FedAvg step; for U > 1 steps the summed update's column is zeroed instead).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from evalgrid.defenses.base import ClientSide, Defense, fraction_count, largest, with_gradients
from evalgrid.defenses.options import SoteriaOptions
from evalgrid.fl.threat_model import SharedUpdate


class Soteria(Defense):
    """Zero the last linear layer's weight-gradient columns of the most revealing features."""

    def __init__(self, options: SoteriaOptions):
        self.options = options

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        layer = last_linear(client.model)
        index = parameter_index(client.model, layer.weight)
        gradients = [g.detach() for g in update.gradients]
        target = gradients[index]
        if target.shape != layer.weight.shape:
            raise ValueError(f"gradient {index} has shape {tuple(target.shape)}, the last nn.Linear's weight "
                             f"{tuple(layer.weight.shape)}")
        if fraction_count(self.options.prune_ratio, target.shape[1]) == 0:
            return with_gradients(update, gradients)
        scores = feature_scores(client, layer)
        pruned = largest(scores, fraction_count(self.options.prune_ratio, scores.numel())).to(target.device)
        gradients[index] = torch.where(pruned.view(1, -1), torch.zeros_like(target), target)
        return with_gradients(update, gradients)


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last nn.Linear in module order: the classifier whose input is Soteria's r."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"Soteria needs a model whose last layer is an nn.Linear; {type(model).__name__} has none")
    return linears[-1]


def parameter_index(model: nn.Module, parameter: nn.Parameter) -> int:
    """The position of ``parameter`` among the trainable parameters (the update's order)."""
    for index, candidate in enumerate(p for p in model.parameters() if p.requires_grad):
        if candidate is parameter:
            return index
    raise ValueError("the last nn.Linear's weight is not a trainable parameter of the model")


def feature_scores(client: ClientSide, layer: nn.Linear) -> Tensor:
    """s_i = ‖r_{:,i}‖₂ / ‖∂r_{:,i}/∂X‖_F for every feature i of the last layer's input r."""
    model = client.model
    device = layer.weight.device
    inputs = client.normalization.normalize(client.data.images.to(device)).detach().requires_grad_(True)
    captured: list[Tensor] = []
    handle = layer.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        # Cloned buffers: a train-mode forward must not move the client's BN running statistics.
        state = {**{n: p.detach() for n, p in model.named_parameters()},
                 **{n: b.clone() for n, b in model.named_buffers()}}
        functional_call(model, state, (inputs,))
    finally:
        handle.remove()
    representation = captured[-1]
    if representation.ndim != 2:
        raise ValueError(f"Soteria expects the last nn.Linear's input to be (batch, features), got "
                         f"{tuple(representation.shape)}")
    features = representation.shape[1]
    jacobian_norms = torch.empty(features, dtype=torch.float64, device=device)
    for feature in range(features):
        (row,) = torch.autograd.grad(representation[:, feature].sum(), inputs, retain_graph=feature + 1 < features,
                                     allow_unused=False)
        jacobian_norms[feature] = torch.linalg.vector_norm(row.double())
    norms = torch.linalg.vector_norm(representation.detach().double(), dim=0)
    scores = norms / jacobian_norms
    return torch.where(norms == 0, torch.zeros_like(scores), scores)  # 0/0: a silent feature reveals nothing


def build(options: SoteriaOptions) -> Soteria:
    return Soteria(options)
