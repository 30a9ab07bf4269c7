"""What the gradient-matching attacks share: the client's loss on dummy data, dummy
initialisation, the NaN guard, and the loop that advances an attack's explicit state.

An attack keeps everything that changes while it runs (iteration counter, dummy tensors,
optimiser, scheduler) in one state object made by ``start`` and advanced by ``step``, so
that a run can be checkpointed between two steps. All randomness is drawn in ``start``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor, nn

from evalgrid.attacks.options import Init
from evalgrid.fl.local_training import local_update
from evalgrid.fl.threat_model import Normalization, Reconstruction, ServerView

State = TypeVar("State")


class NonFiniteLoss(RuntimeError):
    """The attack's loss became NaN or infinite; the message names the iteration."""


_last_checked_loss: Tensor | None = None


def check_finite(loss: Tensor, iteration: int) -> None:
    global _last_checked_loss
    if not torch.isfinite(loss):
        raise NonFiniteLoss(f"the attack's loss became {loss.item()} at iteration {iteration}")
    _last_checked_loss = loss.detach()


def last_checked_loss() -> Tensor | None:
    """The loss :func:`check_finite` last passed, detached: every attack checks its step's
    objective there, so the running cell's progress file shows it as the attack's latest loss
    (evaluation/checkpoint.py reads it only when it writes that file; the attack never reads it)."""
    return _last_checked_loss


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def select(view: ServerView, gradients: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The gradients the attack may match (all, or one module's: ``view.gradient_selection``)."""
    if view.gradient_selection is None:
        return gradients
    return tuple(gradients[i] for i in view.gradient_selection)


def model_gradients(view: ServerView, inputs: Tensor, targets: Tensor, *,
                    create_graph: bool = True) -> tuple[Tensor, ...]:
    """The update the attacker expects dummy ``inputs`` to produce: the client's local training
    as the attacker believes it (``view.local_training``; FedSGD: one gradient) run on the
    attacker's model copy, restricted to ``view.gradient_selection``. Keeps the graph by
    default; ``targets`` are class indices or, for DLG's soft labels, class probabilities."""
    return select(view, local_update(view.model, inputs, targets, view.local_training, create_graph=create_graph))


def _randn(shape: tuple[int, ...], generator: torch.Generator, normalization: Normalization) -> Tensor:
    return torch.randn(shape, generator=generator, device=generator.device)


def _rand(shape: tuple[int, ...], generator: torch.Generator, normalization: Normalization) -> Tensor:
    pixels = torch.rand(shape, generator=generator, device=generator.device)
    return normalization.normalize(pixels)


INITIALISATIONS: dict[str, Callable[[tuple[int, ...], torch.Generator, Normalization], Tensor]] = {
    "randn": _randn,  # N(0, 1) in the model's input space, as DLG's and inversefed's code
    "rand": _rand,  # uniform pixels in [0, 1], normalised (inversefed's 'rand' is U(-1, 1) instead)
}


def dummy_images(init: Init, view: ServerView, generator: torch.Generator) -> Tensor:
    """A dummy batch (B, C, H, W) on the model's device, drawn from ``generator`` on the
    generator's own device (so a CPU generator gives the same start whatever the model's device)."""
    shape = (view.batch_size, *view.data_shape)
    return INITIALISATIONS[init](shape, generator, view.normalization).to(device_of(view.model))


def optimizer_step(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                   images: Tensor, box: tuple[Tensor, Tensor] | None) -> None:
    """Apply the gradient already in ``images.grad``, advance the schedule, and clamp the
    dummy pixels into ``box`` (the input-space bounds of [0, 1]) when one is given."""
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if box is not None:
        with torch.no_grad():
            images.clamp_(*box)


def term_values(terms: dict[str, Tensor]) -> dict[str, float]:
    """Loss terms as plain numbers (one device sync each: call at the first step and the end only)."""
    return {name: float(value.detach()) for name, value in terms.items()}


def first_and_last(first: dict[str, float], last: dict[str, Tensor]) -> dict[str, tuple[float, float]]:
    """(first, last) per term, in the order of the last step's terms."""
    return {name: (first.get(name, float("nan")), value) for name, value in term_values(last).items()}


def shared_gradients(view: ServerView) -> tuple[Tensor, ...]:
    """The client's update on the model's device (restricted to the selected gradients), the
    target of gradient matching."""
    device = device_of(view.model)
    return select(view, tuple(g.to(device) for g in view.update.gradients))


class SteppedAttack(ABC, Generic[State]):
    """An attack as ``start`` → ``step`` until ``done`` → ``result``; ``reconstruct`` runs it."""

    @abstractmethod
    def start(self, view: ServerView, generator: torch.Generator) -> State:
        """The state before the first step; draws all of the attack's randomness."""

    @abstractmethod
    def step(self, view: ServerView, state: State) -> None:
        """Advance ``state`` by one optimiser step; raises :class:`NonFiniteLoss` on NaN/inf."""

    @abstractmethod
    def done(self, state: State) -> bool: ...

    @abstractmethod
    def result(self, view: ServerView, state: State) -> Reconstruction:
        """The reconstruction; its ``iterations`` are the steps actually taken (fewer than
        :meth:`planned_iterations` when early stopping ended a trial)."""

    @abstractmethod
    def planned_iterations(self) -> int:
        """The steps a run takes when nothing stops it early, summed over restarts."""

    def reconstruct(self, view: ServerView, generator: torch.Generator) -> Reconstruction:
        state = self.start(view, generator)
        while not self.done(state):
            self.step(view, state)
        return self.result(view, state)

    def snapshot(self, state: State) -> dict[str, Any]:
        """The state as plain data for ``torch.save`` (weights_only-loadable): tensors on the
        CPU, optimisers and schedulers as their state dicts, dataclasses as dicts of their
        fields, everything else as is."""
        return {f.name: _snapshot_value(getattr(state, f.name)) for f in dataclasses.fields(state)}

    def restore(self, view: ServerView, generator: torch.Generator, saved: dict[str, Any]) -> State:
        """The state a :meth:`snapshot` was taken of: ``start`` rebuilds the objects (with the
        same generator seed), then every field takes its saved value, tensors in place so that
        optimisers keep referring to them. A field the snapshot lacks (added to the state since
        it was taken) keeps its value from ``start``."""
        state = self.start(view, generator)
        device = device_of(view.model)
        for f in dataclasses.fields(state):
            if f.name not in saved:
                continue
            current, value = getattr(state, f.name), saved[f.name]
            if hasattr(current, "load_state_dict"):
                current.load_state_dict(value)
            elif _is_record(current) and isinstance(value, dict):
                known = {f.name for f in dataclasses.fields(current)}
                setattr(state, f.name, dataclasses.replace(
                    current, **{k: _to_device(v, device) for k, v in value.items() if k in known}))
            elif isinstance(current, Tensor) and isinstance(value, Tensor) and current.shape == value.shape:
                with torch.no_grad():
                    current.copy_(value)
            else:
                setattr(state, f.name, _to_device(value, device))
        return state


def _is_record(value: Any) -> bool:
    """A dataclass instance held in a state (e.g. a CMA-ES search's state)."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _snapshot_value(value: Any) -> Any:
    if hasattr(value, "state_dict") and not isinstance(value, Tensor):
        return value.state_dict()
    if _is_record(value):
        return {f.name: _snapshot_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_snapshot_value(v) for v in value)
    return value


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device) for v in value)
    return value
