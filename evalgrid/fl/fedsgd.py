"""The FedSGD client: it shares the gradient of its mean cross-entropy loss on one batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evalgrid.threat_model import ClientData, Normalization, SharedUpdate


def compute_update(model: nn.Module, data: ClientData, normalization: Normalization) -> SharedUpdate:
    """The gradient the client sends: d/dθ mean_i CE(model(x_i), y_i) at the global weights θ.

    The model is used as given (train or eval mode); its weights are not changed.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(normalization.normalize(data.images)), data.labels)
    gradients = torch.autograd.grad(loss, parameters)
    return SharedUpdate(gradients=tuple(g.detach() for g in gradients), num_samples=len(data.labels))
