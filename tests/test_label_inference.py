"""Label inference rules, on the real pipeline and on hand-made last-layer gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evalgrid.catalogue import LABEL_RULES
from evalgrid.catalogue.registry import UnknownName
from evalgrid.fl.threat_model import Normalization, ServerView, SharedUpdate
from test_attacks import victim


def view_of(*gradients: torch.Tensor, batch_size: int, num_classes: int = 4) -> ServerView:
    """A view whose update is the given gradients (the model is not consulted by the rules)."""
    return ServerView(model=nn.Linear(3, num_classes), update=SharedUpdate(tuple(gradients), batch_size),
                      data_shape=(1, 2, 2), num_classes=num_classes,
                      normalization=Normalization((0.5,), (0.25,)), known_labels=None)


def classifier_gradient(row_sums: list[float], width: int = 3) -> torch.Tensor:
    """A (K, width) weight gradient whose rows sum to ``row_sums``."""
    return torch.tensor(row_sums).unsqueeze(1).expand(-1, width) / width


def test_idlg_recovers_the_label_of_20_random_single_samples_on_lenet():
    for seed in range(20):
        view, client = victim(seed=seed)
        assert torch.equal(LABEL_RULES["idlg"].build(view), client.labels), f"seed {seed}"


def test_idlg_reads_the_most_negative_row_for_one_sample():
    view = view_of(classifier_gradient([0.3, -0.2, -0.9, 0.8]), torch.zeros(4), batch_size=1)
    assert LABEL_RULES["idlg"].build(view).tolist() == [2]


def test_idlg_beyond_one_sample_takes_the_b_most_negative_row_sums_as_fedleak_does():
    # B = 3 ≤ K = 4: the three smallest sums, most negative first (FedLeak Sec. 5), even the positive 0.2
    view = view_of(classifier_gradient([-0.1, 0.4, -0.7, 0.2]), torch.zeros(4), batch_size=3)
    assert LABEL_RULES["idlg"].build(view).tolist() == [2, 0, 3]


def test_idlg_keeps_the_most_negative_classes_when_more_rows_are_negative_than_samples():
    view = view_of(classifier_gradient([-0.1, -0.5, -0.3, 0.9]), torch.zeros(4), batch_size=2)
    assert LABEL_RULES["idlg"].build(view).tolist() == [1, 2]


def test_idlg_beyond_one_sample_ranks_the_sums_even_when_none_is_negative():
    view = view_of(classifier_gradient([0.4, 0.1, 0.3, 0.9]), torch.zeros(4), batch_size=2)
    assert LABEL_RULES["idlg"].build(view).tolist() == [1, 2]


def test_idlg_uses_the_last_weight_gradient_with_one_row_per_class():
    earlier = classifier_gradient([-0.9, 0.1, 0.1, 0.1])  # a hidden layer that happens to have K rows
    classifier = classifier_gradient([0.1, 0.1, -0.9, 0.1])
    projection = torch.full((5, 4), -1.0)  # a later 2-D gradient, but not K rows
    view = view_of(earlier, classifier, torch.zeros(4), projection, batch_size=1)
    assert LABEL_RULES["idlg"].build(view).tolist() == [2]


def test_idlg_explains_a_model_without_a_classifier_weight():
    view = view_of(torch.zeros(5, 3), torch.zeros(4), batch_size=1)
    with pytest.raises(ValueError, match="4 rows"):
        LABEL_RULES["idlg"].build(view)


def test_an_unknown_rule_lists_the_valid_ones():
    with pytest.raises(UnknownName, match="idlg"):
        LABEL_RULES["idgl"]
