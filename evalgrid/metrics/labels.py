"""Label recovery accuracy, independent of the order in which an attack returns labels."""

from __future__ import annotations

import math
from collections import Counter

import torch


def label_accuracy(true_labels: torch.Tensor, recovered_labels: torch.Tensor, labels_known: bool) -> float:
    """|multiset(recovered) ∩ multiset(true)| / B; NaN when the attacker was given the labels.

    A batch with labels [3, 3, 5] recovered as [3, 5, 5] scores 2/3: each true label can be
    claimed by one recovered label only.
    """
    if labels_known:
        return math.nan  # nothing was recovered, so there is nothing to score
    if len(recovered_labels) != len(true_labels):
        raise ValueError(f"{len(recovered_labels)} recovered labels for a batch of {len(true_labels)}")
    common = Counter(true_labels.tolist()) & Counter(recovered_labels.tolist())
    return sum(common.values()) / len(true_labels)
