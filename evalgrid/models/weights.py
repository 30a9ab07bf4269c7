"""Pretrained weight files evalgrid may need, where torch caches them, and fetching them.

Runs never download: compute nodes often have no internet, and a download racing in
many cells corrupts the cache. Missing files are reported up front (:func:`require_weights`)
and fetched once, on purpose, by ``evalgrid weights fetch`` (:func:`fetch_weights`).
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from evalgrid.errors import MissingInput, UserError, storage_full
from evalgrid.catalogue.registry import Registry
from evalgrid.store.atomic import atomic_write

FETCH_COMMAND = "evalgrid weights fetch"
DOWNLOAD_TIMEOUT_S = 60.0  # a connection silent this long fails the download
DOWNLOAD_CHUNK = 1 << 20


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
    """Raise a MissingInput that says how to provide the weights files that are missing (``path``:
    the file, when only one is)."""
    missing = missing_weights(names)
    if not missing:
        return
    files = "; ".join(f"{WEIGHTS[name].used_by} needs {weights_path(name)} (from {WEIGHTS[name].url})"
                      for name in missing)
    raise MissingInput(
        f"missing pretrained weights, and evalgrid never downloads during a run: {files}. "
        f"torch's cache folder is {torch.hub.get_dir()} (set by $TORCH_HOME or torch.hub.set_dir). "
        f"Run `{FETCH_COMMAND} {' '.join(missing)}` on a machine with internet access and the same TORCH_HOME, "
        f"or copy the files to those paths.", weights_path(missing[0]) if len(missing) == 1 else None)


def fetch_weights(name: str, progress: bool = True, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download the weights file ``name`` into torch's cache, verifying its hash; returns its path.

    Does nothing when the file is already there. The file appears whole or not at all (an
    atomic write of a download that was checked first); any failure is one UserError naming the
    file, the URL, the path, the reason and what to do instead.
    """
    spec, path = WEIGHTS[name], weights_path(name)
    if path.is_file():
        return path
    try:
        atomic_write(path, lambda tmp: _download(spec, tmp, progress, timeout_s))
    except (DownloadFailed, OSError, http.client.HTTPException, ValueError) as error:
        raise UserError(_fetch_failed(name, path, _reason(error, timeout_s), _cannot_write(error))) from None
    return path


class DownloadFailed(Exception):
    """A download that arrived but is not the expected file (cut short, another hash, unreadable)."""


def _download(spec: WeightsFile, target: Path, progress: bool, timeout_s: float) -> None:
    """Write the file at ``spec.url`` to ``target``; raise unless it is whole, has the hash its
    name announces and loads as a state dict."""
    request = urllib.request.Request(spec.url, headers={"User-Agent": "evalgrid"})
    sha256, received = hashlib.sha256(), 0
    with urllib.request.urlopen(request, timeout=timeout_s) as response, open(target, "wb") as file:
        expected = int(response.headers.get("Content-Length") or -1)
        with torch.hub.tqdm(total=expected if expected >= 0 else None, disable=not progress, unit="B",
                            unit_scale=True, unit_divisor=1024) as bar:
            while chunk := response.read(DOWNLOAD_CHUNK):
                file.write(chunk)
                sha256.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if 0 <= expected != received:
        raise DownloadFailed(f"the connection ended after {received:,} of {expected:,} bytes")
    announced = torch.hub.HASH_REGEX.search(spec.filename)
    if announced and not sha256.hexdigest().startswith(announced.group(1)):
        raise DownloadFailed(f"its SHA-256 starts {sha256.hexdigest()[:len(announced.group(1))]}, not the "
                             f"{announced.group(1)} its name announces (a damaged download or another file)")
    try:
        torch.load(target, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever torch says (pages of it), the file is not usable
        with open(target, "rb") as file:
            head = file.read(16)
        raise DownloadFailed(f"it is not a readable state dict ({type(error).__name__}; it begins {head!r}: "
                             f"a web page, a damaged file or another format)") from None


def _reason(error: BaseException, timeout_s: float) -> str:
    """Why a download failed, in one line."""
    if isinstance(error, urllib.error.HTTPError):
        return f"the server answered HTTP {error.code} {error.reason}"
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(cause, socket.gaierror):
        return f"the host name does not resolve ({cause.strerror}): no network or no DNS here"
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return f"no answer for {timeout_s:g} s (no network here, or it is too slow)"
    if isinstance(cause, ConnectionRefusedError):
        return "the connection was refused (no network here, or a proxy or firewall in the way)"
    if isinstance(cause, http.client.IncompleteRead):
        return "the connection ended before the whole file arrived" + (
            f" ({cause.expected:,} bytes short)" if cause.expected else "")
    if isinstance(cause, OSError) and cause.filename is not None:
        return f"cannot write {cause.filename}: {cause.strerror}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return _first_line(cause)


def _cannot_write(error: BaseException) -> bool:
    """Whether the download failed on this machine's cache folder rather than on the way."""
    return (isinstance(error, OSError) and not isinstance(error, urllib.error.URLError)
            and (error.filename is not None or storage_full(error)))


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fetch_failed(name: str, path: Path, reason: str, cannot_write: bool) -> str:
    spec = WEIGHTS[name]
    failed = f"could not download {spec.filename} ({spec.used_by}) from {spec.url} into {path}: {reason}."
    if cannot_write:
        return (f"{failed} Make {path.parent} a folder you can write, or set TORCH_HOME to one (torch then "
                f"keeps its weights in $TORCH_HOME/hub/checkpoints/), and run `{FETCH_COMMAND} {name}` again.")
    return (f"{failed} Nothing was written there. On a machine with internet, run `{FETCH_COMMAND} {name}` and "
            f"copy that machine's $TORCH_HOME/hub/checkpoints/{spec.filename} (TORCH_HOME defaults to ~/.cache/torch) "
            f"to {path}; or set TORCH_HOME to a folder whose hub/checkpoints/ holds it.")
