"""FedLeak's fully connected ReLU network (Fan et al. 2025, Sec. 3 and Appendix A, Table 11):
the image flattened, three hidden Linear+ReLU layers, one output Linear layer.

    f(x) = W₄ relu(W₃ relu(W₂ relu(W₁ vec(x) + b₁) + b₂) + b₃) + b₄

What FedLeak states: Sec. 3 trains "a three-hidden-layer network with ReLU activation function"
on MNIST and CIFAR-10 and attacks it with batch size 1; Appendix A runs BayesAttack, IG and GI
"on a three-layer fully connected network (Section 3)", the same network. It gives no width, no
initialisation and no reference code.

Where the paper is silent we follow Inverting Gradients' reference code, whose attack is one of
Table 11's three: inversefed/nn/models.py ``MLP`` is exactly such a network, three hidden
layers of 1024 units with ReLU, PyTorch's default initialisation, and these module names
(flatten, linear0, relu0, ..., linear3), so that with 3×32×32 inputs a seed gives its weights.
Balunovic et al.'s code (eth-sri/bayes-framework-leakage, models/base_flax.py ``MLP_Flax``)
builds the same shape of network (Dense+ReLU, widths given on the command line) but its
experiments name no fully connected widths, so it does not decide the width.

Departures from the paper (it is silent; our choices):

* width 1024 for every hidden layer (inversefed's ``MLP``); ``width`` changes it;
* ``hidden_layers`` (default 3, Sec. 3) lets a grid build Appendix A's "three-layer" in the
  other reading, two hidden layers (three Linear layers in all);
* the input layer reads the dataset's C·H·W pixels (inversefed's is fixed at 3072, CIFAR-10).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.models.options import FullyConnectedOptions


class FullyConnected(nn.Sequential):
    """Flatten, ``hidden_layers`` × (Linear, ReLU), Linear. A Sequential, as inversefed's ``MLP``
    is, so that the state dicts share their keys (linear0.weight, ..., linear3.bias)."""

    def __init__(self, inputs: int, num_classes: int, width: int, hidden_layers: int):
        layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        features = inputs
        for index in range(hidden_layers):
            layers += [(f"linear{index}", nn.Linear(features, width)), (f"relu{index}", nn.ReLU())]
            features = width
        layers.append((f"linear{hidden_layers}", nn.Linear(features, num_classes)))
        super().__init__(OrderedDict(layers))


def build(options: FullyConnectedOptions, info: DatasetInfo) -> FullyConnected:
    """The network for ``info``'s images: C·H·W inputs, one output per class."""
    inputs = info.channels * info.resolution * info.resolution
    return FullyConnected(inputs, info.num_classes, options.width, options.hidden_layers)
