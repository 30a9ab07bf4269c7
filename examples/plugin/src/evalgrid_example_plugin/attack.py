"""The analytic leak through a fully connected first layer with bias (Phong et al. 2018,
Sec. 3; Geiping et al. 2020, Sec. 3; breaching's "analytic" attacks).

For z = W x + b, the first layer's gradients are, for one sample,

    ∂L/∂W_i = (∂L/∂z_i) · xᵀ   and   ∂L/∂b_i = ∂L/∂z_i,

so every unit i with ∂L/∂b_i ≠ 0 gives the input back exactly:  x = (∂L/∂W_i) / (∂L/∂b_i).
We take the unit with the largest |∂L/∂b_i| (the division least hurt by rounding or noise).

For a batch of B > 1 samples the shared gradient is the mean over the batch, and the ratio
is a weighted mix of the inputs,

    (∂L/∂W_i) / (∂L/∂b_i) = Σ_n δ_ni x_n / Σ_n δ_ni,   δ_ni = ∂L_n/∂z_ni,

exact for a sample only when unit i saw that sample alone (e.g. a ReLU active for it only).
The attack then returns, honestly, the B units with the largest |∂L/∂b_i|, one mix each; it
does not try to separate the samples. Under FedAvg (several local steps) the update is a sum
of gradients at different weights, and the ratio is only approximate too.

What it needs: the model's first trainable layer (first in ``model.parameters()`` order) is an
``nn.Linear`` with a trainable bias that takes the flattened input (C·H·W features), as in the
plugin's ``mlp``, and the attacker may see its gradients (``gradient_source = "all"``).
Anything else raises :class:`NotALinearFirstLayer` when the cell runs. The labels come from the
threat model (``labels = "known"``) or from a label rule (``label_inference``); the images do
not depend on them. The attack draws no random numbers and takes one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from evalgrid.attacks.base import SteppedAttack, model_gradients, shared_gradients
from evalgrid.attacks.labels import fixed_labels
from evalgrid.attacks.losses import squared_l2_distance
from evalgrid.errors import UserError
from evalgrid.fl.threat_model import Reconstruction, ServerView
from evalgrid_example_plugin.options import LinearLeakOptions


class NotALinearFirstLayer(ValueError):
    """The model or the threat model does not let the analytic leak run."""


@dataclass
class LinearLeakState:
    """Everything the attack changes: whether its one step ran, and what it found."""

    steps: int  # 0 before the step, 1 after
    labels: Tensor  # (B,) the known or inferred labels, on the model's device
    images: Tensor  # (B, C, H, W) the reconstruction in the model's input space (zeros before the step)
    units: Tensor  # (B,) the first-layer units the images were read from (-1 before the step)


def first_layer_problem(model: nn.Module, data_shape: tuple[int, ...]) -> str | None:
    """Why ``model`` cannot be attacked: its first trainable layer must be a Linear with a
    trainable bias on the flattened input. None when it can."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        return "linear_leak: the model has no trainable parameter"
    module_name = trainable[0].rpartition(".")[0]
    layer = model.get_submodule(module_name) if module_name else model
    inputs = data_shape[0] * data_shape[1] * data_shape[2]
    where = f"{module_name or 'the model'} ({type(layer).__name__})"
    if not isinstance(layer, nn.Linear):
        return (f"linear_leak needs a model whose first trainable layer is an nn.Linear on the flattened input "
                f"(e.g. model 'mlp'); this model's is {where}")
    if layer.bias is None or not layer.bias.requires_grad:
        return f"linear_leak needs a bias in the first layer: x = dL/dW_i / dL/db_i; {where} has no trainable bias"
    if layer.in_features != inputs:
        return (f"linear_leak needs the first layer to take the flattened input ({inputs} features); {where} "
                f"takes {layer.in_features}")
    return None


def preflight(options: LinearLeakOptions, model: nn.Module, info) -> None:
    """Before dispatch (``run``, ``plan --check``): refuse a model the attack cannot leak through."""
    problem = first_layer_problem(model, (info.channels, info.resolution, info.resolution))
    if problem is not None:
        raise UserError(problem)


def first_linear_layer(view: ServerView) -> tuple[int, int]:
    """Indices, into the shared update, of the first trainable layer's weight and bias
    gradients; raises :class:`NotALinearFirstLayer` unless it is a Linear with bias on the input."""
    problem = first_layer_problem(view.model, view.data_shape)
    if problem is not None:
        raise NotALinearFirstLayer(problem)
    trainable = [name for name, p in view.model.named_parameters() if p.requires_grad]
    module_name = trainable[0].rpartition(".")[0]
    prefix = f"{module_name}." if module_name else ""
    weight, bias = trainable.index(prefix + "weight"), trainable.index(prefix + "bias")
    if view.gradient_selection is not None and not {weight, bias} <= set(view.gradient_selection):
        raise NotALinearFirstLayer("linear_leak needs the first layer's gradients, which this cell's "
                                   "gradient_source hides from the attacker: use gradient_source = \"all\"")
    return weight, bias


class LinearLeak(SteppedAttack[LinearLeakState]):
    """x = ∂L/∂W_i / ∂L/∂b_i for the units i with the largest |∂L/∂b_i|, in one step."""

    def __init__(self, options: LinearLeakOptions):
        self.options = options

    def start(self, view: ServerView, generator: torch.Generator) -> LinearLeakState:
        first_linear_layer(view)  # fail before anything else when the model does not fit
        labels = fixed_labels(view, self.options.label_inference)
        device = labels.device
        return LinearLeakState(steps=0, labels=labels,
                               images=torch.zeros((view.batch_size, *view.data_shape), device=device),
                               units=torch.full((view.batch_size,), -1, dtype=torch.long, device=device))

    def step(self, view: ServerView, state: LinearLeakState) -> None:
        weight, bias = first_linear_layer(view)
        grad_w = view.update.gradients[weight].detach().to(state.images.device)
        grad_b = view.update.gradients[bias].detach().to(state.images.device)
        if not torch.any(grad_b != 0):
            raise NotALinearFirstLayer("linear_leak: every bias gradient of the first layer is 0 (no unit saw the "
                                       "input): nothing to divide by")
        count = min(view.batch_size, grad_b.numel())
        units = torch.argsort(grad_b.abs(), descending=True, stable=True)[:count]
        units = units.repeat(-(-view.batch_size // count))[: view.batch_size]  # more samples than units: reuse
        rows = grad_w[units] / grad_b[units].unsqueeze(1)
        state.images = rows.reshape(view.batch_size, *view.data_shape).to(state.images.dtype)
        state.units = units
        state.steps = 1

    def done(self, state: LinearLeakState) -> bool:
        return state.steps >= 1

    def result(self, view: ServerView, state: LinearLeakState) -> Reconstruction:
        """The images; ``final_loss`` is ||∇W(x', y) − ∇W||² at them (≈ 0 when B = 1 and undefended)."""
        images = state.images.detach()
        loss = squared_l2_distance(model_gradients(view, images, state.labels, create_graph=False),
                                   shared_gradients(view)).item()
        return Reconstruction(images=images.clone(), labels=state.labels.clone(), iterations=state.steps,
                              final_loss=loss, loss_terms={"squared_l2": (float("nan"), loss)})

    def planned_iterations(self) -> int:
        return 1


def build(options: LinearLeakOptions) -> LinearLeak:
    return LinearLeak(options)
