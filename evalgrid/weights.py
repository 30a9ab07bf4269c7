"""Pretrained weight files evalgrid may need, where torch caches them, and fetching them.

Runs never download: compute nodes often have no internet, and a download racing in
many cells corrupts the cache. Missing files are reported up front (:func:`require_weights`)
and fetched once, on purpose, by ``evalgrid weights fetch`` (:func:`fetch_weights`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from evalgrid.errors import UserError
from evalgrid.registry import Registry

FETCH_COMMAND = "evalgrid weights fetch"


@dataclass(frozen=True)
class WeightsFile:
    """A checkpoint torch.hub keeps in ``<torch.hub.get_dir()>/checkpoints/``."""

    name: str
    url: str  # its file name ends in the hash prefix that torch.hub checks on download
    used_by: str  # what needs it, for error messages

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


WEIGHTS: Registry[WeightsFile] = Registry("weights file")
# torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url, spelled out so that validating a grid
# does not import torchvision (a test checks they agree).
WEIGHTS.register("alexnet", WeightsFile(
    "alexnet", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "LPIPS (its AlexNet trunk, ImageNet weights)"))


def checkpoint_dir() -> Path:
    """torch's checkpoint cache, read now: ``$TORCH_HOME/hub/checkpoints`` unless
    ``torch.hub.set_dir`` moved it (default ``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(name: str) -> Path:
    """Where torch looks for (and would download) the weights file ``name``."""
    return checkpoint_dir() / WEIGHTS[name].filename


def missing_weights(names: Iterable[str]) -> list[str]:
    """The names among ``names`` whose file is not in the cache, in order, without repeats."""
    return [name for name in dict.fromkeys(names) if not weights_path(name).is_file()]


def require_weights(names: Iterable[str]) -> None:
    """Raise a UserError that says how to provide the weights files that are missing."""
    missing = missing_weights(names)
    if not missing:
        return
    files = "; ".join(f"{WEIGHTS[name].used_by} needs {weights_path(name)} (from {WEIGHTS[name].url})"
                      for name in missing)
    raise UserError(
        f"missing pretrained weights, and evalgrid never downloads during a run: {files}. "
        f"torch's cache folder is {torch.hub.get_dir()} (set by $TORCH_HOME or torch.hub.set_dir). "
        f"Run `{FETCH_COMMAND}` on a machine with internet access and the same TORCH_HOME, "
        f"or copy the files to those paths.")


def fetch_weights(name: str, progress: bool = True) -> Path:
    """Download the weights file ``name`` into torch's cache, verifying its hash; returns its path.

    Does nothing when the file is already there.
    """
    spec, path = WEIGHTS[name], weights_path(name)
    if not path.is_file():  # loading the state dict afterwards also proves the file is readable
        torch.hub.load_state_dict_from_url(spec.url, model_dir=str(path.parent), map_location="cpu",
                                           progress=progress, check_hash=True, file_name=spec.filename)
    return path
