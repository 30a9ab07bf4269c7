"""Deep Leakage from Gradients (Zhu et al. 2019), as its reference code (mit-han-lab/dlg,
``main.py``) runs it: dummy data x' ~ N(0, 1) and dummy label logits y' ~ N(0, 1), optimised
jointly by L-BFGS on D = ||∇W(x', softmax(y')) − ∇W||² (Eq. 4); the labels are argmax y'.

With ``early_stop_window`` set, the run ends once D (at the images an L-BFGS step starts
from) has not improved for that many steps (:mod:`.stopping`).

Paper and code differ: Algorithm 1 writes a plain gradient step with rate η; the code uses
torch's L-BFGS with its defaults (lr 1, max_iter 20, history 100) for 300 steps. We follow
the code. Its loss on soft labels, mean_i Σ_k −softmax(y')_ik log p_ik, is our client's mean
cross-entropy (fl/objective.py) with probabilities as targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import torch
from torch import Tensor

from evalgrid.attacks.base import (SteppedAttack, check_finite, dummy_images, model_gradients,
                                   shared_gradients, term_values)
from evalgrid.attacks.labels import fixed_labels
from evalgrid.attacks.losses import squared_l2_distance
from evalgrid.attacks.options import DLGOptions
from evalgrid.attacks.stopping import EarlyStopping
from evalgrid.fl.threat_model import Reconstruction, ServerView

@dataclass
class DLGState:
    """Everything a DLG run changes, step by step."""

    iteration: int  # outer L-BFGS steps taken
    images: Tensor  # the dummy inputs x' (a leaf), in the model's input space
    labels: Tensor | None  # fixed labels (known or inferred); None when optimised jointly
    label_logits: Tensor | None  # DLG's dummy labels y' (a leaf) when optimised jointly
    optimizer: torch.optim.LBFGS
    target: tuple[Tensor, ...]  # the shared gradients on the model's device (derived from the view)
    best_loss: float  # the best D for early stopping (inf before the first step)
    since_best: int  # steps since that best
    first_terms: dict[str, float]  # D at the start of the first step (empty before it)

    def leaves(self) -> list[Tensor]:
        return [self.images] if self.label_logits is None else [self.images, self.label_logits]

    def targets(self) -> Tensor:
        return self.labels if self.labels is not None else self.label_logits.softmax(dim=-1)


class DLG(SteppedAttack[DLGState]):
    """L-BFGS on the squared L2 gradient distance, with joint or fixed labels."""

    def __init__(self, options: DLGOptions):
        self.options = options
        self.stopping = EarlyStopping(options.early_stop_window, options.early_stop_tolerance)

    def start(self, view: ServerView, generator: torch.Generator) -> DLGState:
        images = dummy_images(self.options.init, view, generator).requires_grad_(True)
        labels, label_logits = None, None
        if view.known_labels is None and self.options.label_inference == "joint":
            logits = torch.randn((view.batch_size, view.num_classes), generator=generator, device=generator.device)
            label_logits = logits.to(images.device).requires_grad_(True)
        else:
            labels = fixed_labels(view, self.options.label_inference)
        leaves = [images] if label_logits is None else [images, label_logits]
        optimizer = torch.optim.LBFGS(leaves, lr=self.options.lr, max_iter=self.options.lbfgs_max_iter)
        return DLGState(iteration=0, images=images, labels=labels, label_logits=label_logits, optimizer=optimizer,
                        target=shared_gradients(view), best_loss=math.inf, since_best=0, first_terms={})

    def step(self, view: ServerView, state: DLGState) -> None:
        leaves = state.leaves()

        def closure() -> Tensor:
            state.optimizer.zero_grad()
            gradients = model_gradients(view, state.images, state.targets())
            loss = squared_l2_distance(gradients, state.target)
            check_finite(loss, state.iteration)
            loss.backward(inputs=leaves)
            return loss

        loss = state.optimizer.step(closure)  # D at the images the step started from
        if not state.first_terms:
            state.first_terms = term_values({"squared_l2": loss})
        if self.stopping.enabled:
            state.best_loss, state.since_best, _ = self.stopping.update(state.best_loss, state.since_best,
                                                                       loss.detach().item())
        state.iteration += 1

    def done(self, state: DLGState) -> bool:
        return state.iteration >= self.options.iterations or self.stopping.stopped(state.since_best)

    def result(self, view: ServerView, state: DLGState) -> Reconstruction:
        """The final images; ``final_loss`` is D at them with the targets the attack optimised
        (softmax(y') when joint); the labels are argmax y' when joint."""
        images, targets = state.images.detach(), state.targets().detach()
        loss = squared_l2_distance(model_gradients(view, images, targets, create_graph=False), state.target)
        check_finite(loss, state.iteration)
        labels = state.labels if state.labels is not None else targets.argmax(dim=-1)
        first = state.first_terms.get("squared_l2", float("nan"))
        return Reconstruction(images=images.clone(), labels=labels.clone(), iterations=state.iteration,
                              final_loss=loss.item(), loss_terms={"squared_l2": (first, loss.item())})

    def planned_iterations(self) -> int:
        return self.options.iterations


def build(options: DLGOptions) -> DLG:
    return DLG(options)
