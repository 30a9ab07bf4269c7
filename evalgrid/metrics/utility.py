"""The global model's utility: top-1 accuracy on the first images of a test split."""

from __future__ import annotations

import torch
from torch import nn


def test_accuracy(model: nn.Module, dataset, samples: int, device: torch.device | str,
                  batch_size: int = 256) -> float:
    """Fraction of the first ``samples`` images of ``dataset`` (0 or more than it has: all)
    that ``model`` classifies correctly, in eval mode (BatchNorm uses its running statistics)
    and without gradients. The model's train/eval mode is restored afterwards."""
    count = len(dataset) if samples <= 0 else min(samples, len(dataset))
    if count == 0:
        return float("nan")
    normalization = dataset.info.normalization
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, count, batch_size):
                images, labels = dataset.batch(list(range(start, min(start + batch_size, count))))
                logits = model(normalization.normalize(images.to(device)))
                correct += int((logits.argmax(dim=1).cpu() == labels).sum())
    finally:
        model.train(was_training)
    return correct / count


test_accuracy.__test__ = False  # not a pytest test, despite its name


def stage_accuracy(inputs) -> float:
    """The ``accuracy`` metric: the attacked global model's test accuracy, measured with its stage."""
    return inputs.stage_accuracy


def defended_accuracy(inputs) -> float:
    """The ``defended_accuracy`` metric: the test accuracy of the federation trained to the
    stage's round with every client applying the cell's defense."""
    return inputs.defended_stage().test_accuracy
