"""Which prior a cell needs (:class:`PriorRequest`): what determines its weights, hashed into
its cache key. Torch-free, so that ``plan`` lists the priors to train without importing torch.
Training and the cache are in :mod:`evalgrid.priors.cache`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgrid.grid.cell import Choice
from evalgrid.priors.options import VICTIM_DATA

PRIOR_SCHEMA = 1  # bump when training changes what weights a setup gives
PRIORS_DIR = "priors"  # under the stage cache: priors/<setup key>/


def other_split(split: str) -> str:
    return "test" if split == "train" else "train"


@dataclass(frozen=True)
class PriorRequest:
    """The prior of a cell: the prior (options resolved), the victims' dataset and resolution
    (which fix the images' shape), and the auxiliary data it is trained on, derived from them
    (:func:`auxiliary_data`)."""

    prior: Choice
    victims: Choice  # the victims' dataset (its split option says where the victims come from)
    resolution: int

    @property
    def auxiliary(self) -> Choice:
        return auxiliary_data(self.prior, self.victims)

    def canonical(self) -> dict[str, Any]:
        victims = self.victims.canonical()
        victims["options"].pop("split", None)  # the victims' images' shape does not depend on it
        return {"schema": PRIOR_SCHEMA, "prior": self.prior.canonical(), "auxiliary": self.auxiliary.canonical(),
                "victims": victims, "resolution": self.resolution}

    def key(self) -> str:
        body = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return f"{PRIORS_DIR}/{hashlib.sha256(body.encode()).hexdigest()}"

    def setup_key(self) -> str:
        """One prior per setup: the key (the name the Slurm ledger files trainings under)."""
        return self.key()

    def folder(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / self.key()

    def describe(self) -> str:
        data = self.auxiliary
        options = ", ".join(f"{k}={v!r}" for k, v in data.canonical()["options"].items() if k != "split")
        shape = f" at {self.resolution}px" if self.resolution else ""
        return (f"prior {self.prior} on {data.name}{f'({options})' if options else ''}{shape} "
                f"({self.auxiliary_split_note()})")

    def auxiliary_split_note(self) -> str:
        if getattr(self.prior.options, "data", VICTIM_DATA) == VICTIM_DATA:
            return f"the {self.auxiliary.options.split} split of the victims' dataset"
        return "another dataset"


def auxiliary_data(prior: Choice, victims: Choice) -> Choice:
    """The data a prior trains on: with ``data = "victim"``, the victims' dataset with its other
    split (disjoint from every victim by construction: victims are drawn from their split only);
    else the named dataset with its default options and the prior's ``data_split``."""
    from evalgrid.catalogue import DATASETS

    data = getattr(prior.options, "data", VICTIM_DATA)
    if data == VICTIM_DATA:
        options = dataclasses.replace(victims.options, split=other_split(victims.options.split))
        return Choice(victims.name, options)
    return Choice(data, dataclasses.replace(DATASETS[data].options(), split=prior.options.data_split))


def prior_request(cell: Any) -> PriorRequest | None:
    """The prior a cell's attack optimises through, None without one (paths as resolved when
    the grid was read)."""
    if cell.prior is None:
        return None
    return PriorRequest(cell.prior.resolved(), cell.dataset, cell.resolution)


def is_trained(request: PriorRequest) -> bool:
    """Whether evalgrid trains this prior (else it is loaded from the user's file)."""
    from evalgrid.catalogue import PRIORS

    return PRIORS[request.prior.name].train is not None


def planned_priors(requests: list[PriorRequest | None], cache_dir: Path | None) -> list[tuple[PriorRequest, bool]]:
    """The distinct priors to train, in first-seen order, each with whether it is already in
    ``cache_dir`` (False without one)."""
    seen: dict[str, tuple[PriorRequest, bool]] = {}
    for request in requests:
        if request is not None and is_trained(request) and request.key() not in seen:
            seen[request.key()] = (request, cache_dir is not None and is_cached(request.folder(cache_dir)))
    return list(seen.values())


WEIGHTS_FILE, META_FILE, PROGRESS_FILE = "prior.pt", "prior.json", "progress.pt"


def is_cached(folder: Path) -> bool:
    """The weights and their metadata are both there (the JSON is written last)."""
    return (folder / META_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()
