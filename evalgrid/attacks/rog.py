"""ROG (Yue et al., USENIX Security 2023, "Gradient Obfuscation Gives a False Sense of Security
in Federated Learning"; FedLeak's "ROGS"): gradient inversion through a low-dimensional
representation, then post-processing by a refiner network.

As the authors' code runs it (``src/attack/attacker.py`` ``grad_inv`` and ``multistep_attack``,
``utils/config.yaml``): the representation is an image of side H/sf (sf = 4) drawn from U(0, 1);
its decoding is bicubic upsampling to H; Adam (lr 0.05, T_max = 100 steps) minimises the squared
L2 distance Σ_l ‖∇W_l(x') − ∇W_l‖² between the update the attacker simulates on the decoded
images (one gradient, or the client's local steps: :func:`~evalgrid.attacks.base.model_gradients`)
and the shared one, the step size cosine-annealed from lr to lr/10 over the iterations (the
scheduler steps from the second iteration on, as the code does). The decoded images are then
refined by the refiner prior (:mod:`evalgrid.priors.refiner`).

Departures from the authors' code, and why:
- the post-processing is evalgrid's trained refiner, one network, where the code averages a
  pretrained class-conditional generator and a denoiser followed by USRNet (see the refiner);
- the decoded images are clamped into [0, 1] (the code feeds the raw interpolation), so that
  they are pixels for the model's normalisation and the refiner;
- unknown labels come from a label rule (the code uses the true labels); optional early
  stopping (off by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from evalgrid.attacks.base import (SteppedAttack, check_finite, device_of, first_and_last, model_gradients,
                                   shared_gradients, term_values)
from evalgrid.attacks.labels import fixed_labels
from evalgrid.attacks.losses import flatten, squared_l2_distance
from evalgrid.attacks.options import ROGOptions
from evalgrid.attacks.stopping import EarlyStopping
from evalgrid.fl.threat_model import Reconstruction, ServerView


@dataclass
class ROGState:
    """Everything a ROG run changes, step by step."""

    iteration: int
    steps: int  # steps taken (fewer than iterations when stopped early)
    best_loss: float
    since_best: int
    representation: Tensor  # (B, C, H/sf, W/sf) pixels, a leaf
    optimizer: torch.optim.Adam
    scheduler: torch.optim.lr_scheduler.CosineAnnealingLR
    labels: Tensor
    target: Tensor  # the shared gradients, flattened (derived from the view)
    first_terms: dict[str, float]


class ROG(SteppedAttack[ROGState]):
    """Adam on a low-resolution representation, then the refiner."""

    def __init__(self, options: ROGOptions):
        self.options = options
        self.stopping = EarlyStopping(options.early_stop_window, options.early_stop_tolerance)

    def start(self, view: ServerView, generator: torch.Generator) -> ROGState:
        channels, height, width = view.data_shape
        side = (height // self.options.downsample, width // self.options.downsample)
        draw = torch.rand((view.batch_size, channels, *side), generator=generator, device=generator.device)
        representation = draw.to(device_of(view.model)).requires_grad_(True)
        optimizer = torch.optim.Adam([representation], lr=self.options.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.options.iterations,
                                                               eta_min=0.1 * self.options.lr)
        return ROGState(iteration=0, steps=0, best_loss=math.inf, since_best=0, representation=representation,
                        optimizer=optimizer, scheduler=scheduler,
                        labels=fixed_labels(view, self.options.label_inference),
                        target=flatten(shared_gradients(view)), first_terms={})

    def decoded(self, view: ServerView, representation: Tensor) -> Tensor:
        """Bicubic upsampling of the representation to the image side, as pixels in [0, 1]."""
        from evalgrid.priors.refiner import upsample

        return upsample(representation, view.data_shape[1])

    def objective_terms(self, view: ServerView, state: ROGState, images: Tensor,
                        create_graph: bool = True) -> dict[str, Tensor]:
        """The squared L2 gradient distance at ``images`` (the model's input space)."""
        gradients = model_gradients(view, images, state.labels, create_graph=create_graph)
        return {"squared_l2": squared_l2_distance(gradients, state.target)}

    def step(self, view: ServerView, state: ROGState) -> None:
        state.optimizer.zero_grad()
        images = view.normalization.normalize(self.decoded(view, state.representation))
        terms = self.objective_terms(view, state, images)
        loss = terms["squared_l2"]
        check_finite(loss, state.iteration)
        if not state.first_terms:
            state.first_terms = term_values(terms)
        stop = False
        if self.stopping.enabled:
            state.best_loss, state.since_best, stop = self.stopping.update(state.best_loss, state.since_best,
                                                                          loss.item())
        loss.backward(inputs=[state.representation])
        state.optimizer.step()
        if state.iteration > 0:  # the authors' code steps its scheduler from the second iteration
            state.scheduler.step()
        state.iteration += 1
        state.steps += 1
        if stop:
            state.iteration = self.options.iterations

    def done(self, state: ROGState) -> bool:
        return state.iteration >= self.options.iterations

    def result(self, view: ServerView, state: ROGState) -> Reconstruction:
        """The refined images (or the decoded representation without ``refine``); ``final_loss``
        is the squared L2 gradient distance of the returned images."""
        with torch.no_grad():
            pixels = self.decoded(view, state.representation.detach())
            if self.options.refine:
                if view.prior is None:
                    raise ValueError("ROG's post-processing needs the refiner prior, and the view has none")
                pixels = view.prior(pixels).clamp(0, 1)
        images = view.normalization.normalize(pixels)
        terms = self.objective_terms(view, state, images, create_graph=False)
        return Reconstruction(images=images.detach(), labels=state.labels.clone(), iterations=state.steps,
                              final_loss=float(terms["squared_l2"]), loss_terms=first_and_last(state.first_terms,
                                                                                                 terms))

    def planned_iterations(self) -> int:
        return self.options.iterations


def build(options: ROGOptions) -> ROG:
    return ROG(options)
