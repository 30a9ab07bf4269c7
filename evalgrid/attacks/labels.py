"""Label inference from the shared update: rules ``rule(view) -> labels`` (B,) int64 on the
update's device, declared in the catalogue (:mod:`evalgrid.attacks.entries`), where a package
may add its own; attacks take any of them as their ``label_inference`` option."""

from __future__ import annotations

import torch
from torch import Tensor

from evalgrid.attacks.base import device_of
from evalgrid.fl.threat_model import ServerView

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

    The paper and its code (iDLG.py: ``num_dummy = 1``) cover B = 1 only. For B > 1 this rule is
    FedLeak's (:func:`fedleak`), which extends the same row-sum criterion: the B most negative
    row sums when B ≤ K, counts from the sums' negative parts when B > K (breaching's 'iDLG'
    strategy instead returns one label and fills the rest at random).
    """
    if view.batch_size > 1:
        return fedleak(view)
    return torch.argmin(last_layer_weight_gradient(view).sum(dim=1)).reshape(1)


def yin(view: ServerView) -> Tensor:
    """GradInversion's label restoration (Yin et al. 2021): with non-negative features entering the
    classifier, a row of its weight gradient has a negative entry only if its class is in the
    batch, so for non-repeating labels the batch's classes are the B rows with the smallest
    minimum (as breaching's 'yin' strategy computes it), most negative first.

    The rule assumes B ≤ K distinct labels. For B > K (our choice; the paper does not say, and
    breaching pads with random labels) the K classes in that order are repeated cyclically
    until B labels are filled: deterministic, and every class is present once before any repeats.
    """
    order = torch.argsort(last_layer_weight_gradient(view).amin(dim=1), stable=True)
    repeats = -(-view.batch_size // len(order))
    return order.repeat(repeats)[: view.batch_size]


def fedleak(view: ServerView) -> Tensor:
    """FedLeak (Fan et al. 2025, Sec. 5 "Label inference"): s_k = Σ_d ∇W[k, d], the classifier
    weight gradient summed over the feature dimension.

    B ≤ K: the B classes with the smallest s_k, most negative first (the text's argmin rule).
    B > K: counts from gradient magnitudes, n_k = ⌊B · m_k / Σ_j m_j⌋, then while Σ n_k < B one
    more sample of the class with the lowest s_k. Our copy of the paper lost the formula for m_k;
    we take m_k = max(−s_k, 0), the magnitude of the negative part: with cross-entropy the row
    sums add up to exactly zero (Σ_k (p_ik − y_ik) = 0), so m_k = |s_k| would hand half of the
    batch to classes whose sums are positive, i.e. to classes absent from the batch. If no sum is
    negative, every sample gets the argmin class. The counts are exact when s_k ∝ −n_k, i.e. when
    the model puts little probability on the batch's classes; at initialisation (p ≈ 1/K) the sums
    track n_k − B/K instead and the counts come out right mostly when one class dominates.
    """
    sums = last_layer_weight_gradient(view).sum(dim=1)
    batch_size = view.batch_size
    if batch_size <= len(sums):
        return torch.argsort(sums, stable=True)[:batch_size]
    magnitudes = (-sums).clamp(min=0)
    total = magnitudes.sum()
    counts = (torch.floor(batch_size * magnitudes / total).long() if total > 0
              else torch.zeros_like(sums, dtype=torch.long))
    counts[torch.argmin(sums)] += batch_size - counts.sum()
    # Classes in order of their row sums (most negative first), each repeated by its count.
    order = torch.argsort(sums, stable=True)
    return torch.repeat_interleave(order, counts[order])


def fixed_labels(view: ServerView, rule: str) -> Tensor:
    """The labels an attack optimises with: the known labels when the threat model grants
    them, else those inferred by ``rule``; on the model's device."""
    if view.known_labels is not None:
        labels = view.known_labels
        if labels.shape != (view.batch_size,):
            raise ValueError(f"known_labels has shape {tuple(labels.shape)}, expected ({view.batch_size},)")
    else:
        from evalgrid.catalogue import LABEL_RULES

        labels = LABEL_RULES[rule].build(view)
    return labels.to(device_of(view.model))
