"""Which part of the shared gradient an attacker uses: all of it, or the parameters of one
module, as in the SoK's Table 3 (Du et al. 2025: the gradient of a single inception block of
GoogLeNet or Inception-v3, e.g. ``inception3a`` or ``Mixed_5b``)."""

from __future__ import annotations

from torch import nn

from evalgrid.errors import UserError, did_you_mean

ALL = "all"
_SHOWN = 40  # names listed in an error; the shallowest modules first


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def parameter_count(model: nn.Module) -> int:
    """The number of trainable scalars."""
    return sum(p.numel() for p in _trainable(model))


def source_names(model: nn.Module) -> list[str]:
    """The valid sources: 'all', then every named module with trainable parameters, shallow first."""
    owners = [name for name, module in model.named_modules() if name and _trainable(module)]
    return [ALL] + sorted(owners, key=lambda name: name.count("."))  # stable: forward order within a depth


def parameter_selection(model: nn.Module, source: str) -> tuple[int, ...]:
    """Indices into ``[p for p in model.parameters() if p.requires_grad]`` of the parameters
    under the module ``source`` (a name from ``model.named_modules()``), or of all for 'all'."""
    trainable = _trainable(model)
    if source == ALL:
        return tuple(range(len(trainable)))
    modules = dict(model.named_modules())
    wanted = {id(p) for p in _trainable(modules[source])} if source in modules and source else set()
    if not wanted:
        valid = source_names(model)
        shown = ", ".join(valid[:_SHOWN]) + (f", ... ({len(valid) - _SHOWN} more)" if len(valid) > _SHOWN else "")
        problem = ("has no trainable parameters" if source in modules and source
                   else "is not a module of this model")
        raise UserError(f"gradient source {source!r} {problem}.{did_you_mean(source, valid)} "
                        f"Valid sources: {shown}.")
    return tuple(index for index, p in enumerate(trainable) if id(p) in wanted)
