"""The FedSGD client: it shares the gradient of its mean cross-entropy loss on one batch."""

from __future__ import annotations

from torch import nn

from evalgrid.fl.objective import loss_gradients
from evalgrid.threat_model import ClientData, Normalization, SharedUpdate


def compute_update(model: nn.Module, data: ClientData, normalization: Normalization) -> SharedUpdate:
    """The gradient the client sends: d/dθ mean_i CE(model(x_i), y_i) at the global weights θ.

    The model is used as given (train or eval mode); its weights are not changed.
    """
    gradients = loss_gradients(model, normalization.normalize(data.images), data.labels)
    return SharedUpdate(gradients=tuple(g.detach() for g in gradients), num_samples=len(data.labels))
