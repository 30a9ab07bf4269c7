"""Input-Gradient Smoothness Analysis (IGSA), SoK Sec. 5.1.1, Eq. 10: how little the client's
gradient Φ(X) moves when its input X moves a little. A high value means a smooth
input → gradient map, which the SoK links to a model that gradient inversion finds easy.

Our reading of Eq. 10 (the printed formula is garbled; this follows its text):

    IGSA(X) = K / Σ_k D(X, X + ΔX_k),   D = Σ_l ω_l ‖Φ_l(X) − Φ_l(X + ΔX_k)‖₂ / Σ_l ω_l

* Φ(X) is the gradient of the client's mean cross-entropy w.r.t. the trainable parameters
  (:func:`evalgrid.fl.objective.loss_gradients`), with the model in the mode it is given.
* Layer l is a module that owns trainable parameters (weight and bias together); its
  l2 norm is over all of them. Layers are ordered shallow → deep by parameter order.
* ω = [1+1/L, 1+1/(L−1), ..., 2] "assigns higher weights to the shallow layers": we read the
  vector in backpropagation order (deepest layer first), so the shallowest layer weighs 2 and
  the deepest 1+1/L. "When averaging l2-norms": D is the ω-weighted mean over layers.
* The expectation over ΔX is the mean of K finite differences (Eq. 10's first line), not the
  first-order Jacobian form of its second line.

What the text leaves open, and what we chose:

* "K samples located within a radius r around X": ΔX is drawn uniformly from the l2 ball of
  radius r in the model's input space, the whole batch tensor X being one point.
* Φ is evaluated in float64 (by default) on a copy of the model: at r = 1e-3 the gradient
  difference would otherwise lose several digits to float32 rounding.
* Appendix B: IGSA values are "subsequently normalized for each model", with no word on how;
  we report the raw value per cell, and leave any normalisation to the analysis of a sweep.
* Appendix B averages over 10 independent samples X; a cell evaluates the victim's batch.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from evalgrid.fl.objective import loss_gradients
from evalgrid.catalogue.options import option

PAPER_SAMPLES = 10_000  # K, SoK Appendix B
PAPER_RADIUS = 1e-3  # r, SoK Appendix B


@dataclass(frozen=True)
class IGSAOptions:
    samples: int = option(PAPER_SAMPLES, minimum=1, doc="K perturbed inputs (SoK Appendix B: 10,000)")
    radius: float = option(PAPER_RADIUS, positive=True, doc="r, the l2 radius of the perturbations (SoK: 1e-3)")


def layer_weights(layers: int) -> Tensor:
    """ω ordered shallow → deep: [2, 1+1/2, ..., 1+1/L] (float64), i.e. the SoK's
    [1+1/L, ..., 2] read from the deepest layer to the shallowest."""
    return torch.tensor([1 + 1 / depth for depth in range(1, layers + 1)], dtype=torch.float64)


def parameter_layers(model: nn.Module) -> list[list[int]]:
    """Indices into the trainable parameters (``model.parameters()`` order), grouped by the
    module that owns them, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    for index, name in enumerate(trainable):
        groups.setdefault(name.rpartition(".")[0], []).append(index)
    return list(groups.values())


def igsa(model: nn.Module, inputs: Tensor, labels: Tensor, samples: int = PAPER_SAMPLES,
         radius: float = PAPER_RADIUS, generator: torch.Generator | None = None, *,
         dtype: torch.dtype = torch.float64) -> float:
    """IGSA of ``model`` at the batch ``inputs`` (model input space) with ``labels``: the
    inverse mean ω-weighted per-layer l2 distance between Φ(X) and Φ(X + ΔX) over ``samples``
    perturbations ΔX drawn uniformly from the radius-``radius`` ball (CPU ``generator``, so
    the value does not depend on the device). ``model`` is not changed. Costs 1 + ``samples``
    forward and backward passes in ``dtype`` (float32 is faster and less exact)."""
    if samples < 1 or not radius > 0:
        raise ValueError(f"IGSA needs samples >= 1 and radius > 0, got {samples} and {radius}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    network = copy.deepcopy(model).to(dtype)  # BN running statistics of the copy may move; the model's do not
    x = inputs.detach().to(dtype)
    layers = parameter_layers(network)
    omega = layer_weights(len(layers)).to(x.device)
    omega = omega / omega.sum()
    reference = _gradient(network, x, labels)
    dimension = x.numel()
    total = 0.0
    for _ in range(samples):
        delta = _uniform_in_ball(x.shape, dimension, radius, generator).to(x)
        moved = _gradient(network, x + delta, labels)
        distances = torch.stack([
            torch.sqrt(sum(((reference[i] - moved[i]).double() ** 2).sum() for i in layer)) for layer in layers])
        total += float((omega * distances).sum())
    if total == 0.0:
        return math.inf
    return samples / total


def _gradient(model: nn.Module, x: Tensor, labels: Tensor) -> tuple[Tensor, ...]:
    return tuple(g.detach() for g in loss_gradients(model, x, labels.to(x.device)))


def _uniform_in_ball(shape: torch.Size, dimension: int, radius: float, generator: torch.Generator) -> Tensor:
    """A point drawn uniformly from the l2 ball of ``radius`` in R^dimension, reshaped."""
    direction = torch.randn(dimension, generator=generator, dtype=torch.float64)
    direction /= direction.norm()
    scale = radius * float(torch.rand((), generator=generator, dtype=torch.float64)) ** (1.0 / dimension)
    return (direction * scale).view(shape)


def igsa_of_round(inputs) -> float:
    """The ``igsa`` metric of a cell (:class:`~evalgrid.metrics.scoring.ModelMetricInputs`): IGSA
    of the model the server sent, at the victim's private batch, in the BatchNorm mode the
    client's gradient was computed in, with the grid's budget and a generator of the cell's seed."""
    from evalgrid.fl.local_training import set_bn_mode
    from evalgrid.evaluation.building import IGSA_STREAM, stream_seed

    round_, options = inputs.round, inputs.cell.metric_options
    model = copy.deepcopy(round_.server_model)
    set_bn_mode(model, round_.training.bn_mode)
    generator = torch.Generator().manual_seed(stream_seed(inputs.cell.seed, IGSA_STREAM))
    return igsa(model, inputs.normalization.normalize(round_.private.images), round_.private.labels,
                options.igsa_samples, options.igsa_radius, generator)
