"""Opt-in numerics and layout switches for the attack loop (``[run] speedups``).

Each switch trades exactness for speed on some hardware; benchmarks/gpu_options.py measures
its speed and whether reconstructions stay equally good (PSNR within 0.1 dB on a fixed set).
None is on by default: see benchmarks/README.md for the figures behind that choice. A switch
changes the numbers a cell reports in their last digits, never its id; the switches a cell ran
with are part of the run's settings, not of the grid's factors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a switch is entered: reading a grid's [run] imports no torch
    from torch import nn


@dataclass(frozen=True)
class Speedup:
    """A switch: ``enter(model)`` prepares the attacker's model and returns a context manager
    that is held while the attack runs."""

    name: str
    doc: str
    enter: Callable[[nn.Module], contextlib.AbstractContextManager]


@contextlib.contextmanager
def _tf32(model: nn.Module) -> Iterator[None]:
    import torch

    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@contextlib.contextmanager
def _channels_last(model: nn.Module) -> Iterator[None]:
    import torch

    model.to(memory_format=torch.channels_last)  # the attacker's own copy; conv outputs follow the weights
    yield


def _autocast(dtype: str) -> Callable[[nn.Module], contextlib.AbstractContextManager]:
    def enter(model: nn.Module) -> contextlib.AbstractContextManager:
        import torch

        device = next(model.parameters()).device.type
        return torch.autocast(device_type=device, dtype=getattr(torch, dtype))

    return enter


SPEEDUPS: dict[str, Speedup] = {s.name: s for s in (
    Speedup("tf32", "TensorFloat-32 matrix products and convolutions (CUDA Ampere+; no effect on CPU)", _tf32),
    Speedup("channels_last", "the attacker's model in channels-last memory format", _channels_last),
    Speedup("bf16", "bfloat16 autocast of the attack's forward and gradient passes", _autocast("bfloat16")),
    Speedup("fp16", "float16 autocast of the attack's forward and gradient passes (CUDA)", _autocast("float16")),
)}

NOT_OFFERED = {
    "compile": "torch.compile cannot differentiate twice (gradient matching needs the gradient of a gradient); "
               "benchmarks/gpu_options.py records the error",
}


def unknown_speedup(names: Sequence[str]) -> str | None:
    """What is wrong with the first name that is no switch, with the valid choices; None if all are."""
    from evalgrid.errors import choices_sentence, did_you_mean

    for name in names:
        if name not in SPEEDUPS:
            why = f" ({NOT_OFFERED[name]})." if name in NOT_OFFERED else f".{did_you_mean(name, SPEEDUPS)}"
            return f"unknown speedup {name!r}{why} {choices_sentence(SPEEDUPS)}"
    return None


def parse_speedups(text: str) -> tuple[str, ...]:
    """The names of a comma-separated list (``--speedups``, ``[run] speedups``)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@contextlib.contextmanager
def speedups(names: Sequence[str], model: nn.Module) -> Iterator[None]:
    """Hold every named switch while the attack runs on ``model``."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(SPEEDUPS[name].enter(model))
        yield
