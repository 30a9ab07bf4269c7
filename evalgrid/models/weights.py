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
from evalgrid.catalogue.registry import Registry

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

# The models' ImageNet weights for the grid's `init = "pretrained"`, named after torchvision's
# model builders: each is torchvision.models.<Builder>_Weights.IMAGENET1K_V1.url (the weights
# that `pretrained=True` gave, which the papers' code used), spelled out as above.
MODEL_WEIGHT_URLS: dict[str, str] = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet152": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
    "densenet121": "https://download.pytorch.org/models/densenet121-a639ec97.pth",
    "mobilenet_v2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "vgg11": "https://download.pytorch.org/models/vgg11-8a719046.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "googlenet": "https://download.pytorch.org/models/googlenet-1378be20.pth",
    "inception_v3": "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    "vit_b_16": "https://download.pytorch.org/models/vit_b_16-c867db91.pth",
    "swin_t": "https://download.pytorch.org/models/swin_t-704ceda3.pth",
}
for _name, _url in MODEL_WEIGHT_URLS.items():
    WEIGHTS.register(_name, WeightsFile(_name, _url, f"init 'pretrained' ({_name}'s ImageNet weights)"))


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
        f"Run `{FETCH_COMMAND} {' '.join(missing)}` on a machine with internet access and the same TORCH_HOME, "
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
