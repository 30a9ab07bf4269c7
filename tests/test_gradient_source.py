"""Gradient source: the whole gradient, or the parameters of one module (SoK Table 3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.catalogue import MODELS
from evalgrid.models.gradient_source import parameter_count, parameter_selection
from evalgrid.fl.threat_model import Normalization

CIFAR10_LIKE = DatasetInfo("cifar10-like", 3, 32, 10, Normalization((0.5,) * 3, (0.25,) * 3))


class Toy(nn.Module):
    """body.0 (conv: 2 tensors), body.1 (ReLU: none), body.2 (BatchNorm: 2), head (linear: 2)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2))
        self.head = nn.Linear(8, 3)


def test_all_selects_every_trainable_parameter():
    assert parameter_selection(Toy(), "all") == (0, 1, 2, 3, 4, 5)


def test_a_module_selects_the_indices_of_its_own_parameters():
    model = Toy()
    assert parameter_selection(model, "body.0") == (0, 1)
    assert parameter_selection(model, "body.2") == (2, 3)
    assert parameter_selection(model, "head") == (4, 5)


def test_a_container_selects_every_parameter_below_it():
    assert parameter_selection(Toy(), "body") == (0, 1, 2, 3)


def test_indices_count_only_trainable_parameters():
    model = Toy()
    model.body[0].requires_grad_(False)
    assert parameter_selection(model, "head") == (2, 3)
    assert parameter_selection(model, "all") == (0, 1, 2, 3)
    assert parameter_count(model) == 2 * 2 + 8 * 3 + 3


def test_parameter_count_is_the_number_of_trainable_scalars():
    model = Toy()
    assert parameter_count(model) == (2 * 9 + 2) + 2 * 2 + (8 * 3 + 3)


def test_googlenets_first_inception_block_is_a_small_share_of_the_gradient():
    with torch.device("meta"):
        model = MODELS["googlenet"].build(MODELS["googlenet"].options(), CIFAR10_LIKE)
    selected = parameter_selection(model, "inception3a")
    trainable = [p for p in model.parameters() if p.requires_grad]
    share = sum(trainable[i].numel() for i in selected) / parameter_count(model)
    assert selected == tuple(range(selected[0], selected[0] + len(selected)))  # one block: contiguous
    assert share == pytest.approx(sum(p.numel() for p in model.inception3a.parameters()) / parameter_count(model))
    assert 0.02 < share < 0.03  # the SoK reports 2.27% (Table 3)


def test_an_unknown_module_lists_the_valid_sources_and_a_close_match():
    with pytest.raises(UserError, match=r"gradient source 'hed' is not a module of this model\. Did you mean 'head'\? "
                                        r"Valid sources: all, body, head, body\.0, body\.2\."):
        parameter_selection(Toy(), "hed")


def test_a_module_without_parameters_is_refused():
    with pytest.raises(UserError, match="gradient source 'body.1' has no trainable parameters"):
        parameter_selection(Toy(), "body.1")


def test_the_empty_name_is_not_a_source():
    with pytest.raises(UserError, match="'' is not a module"):
        parameter_selection(Toy(), "")


def test_a_large_model_shows_at_most_40_sources_shallowest_first():
    with torch.device("meta"):
        model = MODELS["googlenet"].build(MODELS["googlenet"].options(), CIFAR10_LIKE)
    with pytest.raises(UserError) as error:
        parameter_selection(model, "Inception3a")
    message = str(error.value)
    assert "Did you mean 'inception3a'?" in message
    assert "Valid sources: all, conv1, conv2, conv3, inception3a," in message
    assert message.count(", ") == 40 and "more)" in message
