"""Label inference from the shared update: a registry of rules, each ``rule(view) -> labels``
(B,) int64 on the update's device. Adding a rule is one function and one ``register``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from evalgrid.attacks.base import device_of
from evalgrid.registry import Registry
from evalgrid.threat_model import ServerView

LabelRule = Callable[[ServerView], Tensor]
LABEL_RULES: Registry[LabelRule] = Registry("label inference rule")


def last_layer_weight_gradient(view: ServerView) -> Tensor:
    """The classifier's weight gradient (K, D): the last 2-D gradient with ``num_classes`` rows."""
    for gradient in reversed(view.update.gradients):
        if gradient.ndim == 2 and gradient.shape[0] == view.num_classes:
            return gradient
    raise ValueError(f"the update has no 2-D gradient with {view.num_classes} rows "
                     "(a linear classifier's weight), which label inference needs")


def idlg(view: ServerView) -> Tensor:
    """iDLG (Zhao et al. 2020): with cross-entropy and non-negative activations a, the last
    layer's gradient row i is (p_i − y_i)·a, so only the true class's row sums to a negative
    number; for B = 1 the label is the argmin of the row sums.

    For B > 1 (our extension, not in the paper): the classes with negative row sums, most
    negative first; if there are fewer than B, the most negative repeats; if more, the B most
    negative are kept. With no negative row at all, the argmin stands for every sample.
    """
    row_sums = last_layer_weight_gradient(view).sum(dim=1)
    order = torch.argsort(row_sums, stable=True)
    negative = order[row_sums[order] < 0][: view.batch_size]
    if len(negative) == 0:
        negative = order[:1]
    return torch.cat([negative, negative[:1].expand(view.batch_size - len(negative))])


LABEL_RULES.register("idlg", idlg)

# The option type of the attacks' ``label_inference``: every rule registered above this line.
RuleName = Literal[tuple(LABEL_RULES.names())]  # type: ignore[misc]


def fixed_labels(view: ServerView, rule: str) -> Tensor:
    """The labels an attack optimises with: the known labels when the threat model grants
    them, else those inferred by ``rule``; on the model's device."""
    if view.known_labels is not None:
        labels = view.known_labels
        if labels.shape != (view.batch_size,):
            raise ValueError(f"known_labels has shape {tuple(labels.shape)}, expected ({view.batch_size},)")
    else:
        labels = LABEL_RULES[rule](view)
    return labels.to(device_of(view.model))
