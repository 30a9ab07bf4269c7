"""Splitting a dataset split among clients. Every draw comes from the ``rng`` passed in, so a
seed fixes the split.

The federation that trains the global model (fl/fedavg.py): IID shards, label skew with
per-client class proportions drawn from a symmetric Dirichlet (Hsu et al. 2019), or PFLlib's
Dirichlet partition (:func:`pfllib_dirichlet_partition`).

The victim's own local dataset under heterogeneity (the ``heterogeneity`` factor, FedLeak
Sec. 6.3, Tables 5 and 6): each component builds an object whose ``shards(dataset,
participants, batch_size, rng)`` returns the disjoint local datasets (indices into the victims'
split) of the victim and its secure-aggregation peers, the victim's first; each one's batch of
the round is then drawn from its shard (fl/client.py). The four kinds, by FedLeak's words:

- label skew, "1-5 classes per client": c distinct classes drawn at random, ``samples`` images
  shared evenly by them (NIID-Bench's #C=k assignment, Li et al. ICDE 2022, with each client's
  images shared evenly by its classes rather than each class by its holders);
- quantity skew, "local datasets of [50-250] samples": ``samples`` images drawn uniformly;
- feature skew, "five percentile groups based on their TV values": ``samples`` images drawn
  uniformly from those whose total variation lies between the band's percentiles;
- Dirichlet (Table 6, "https://github.com/TsingZ0/PFLlib"): PFLlib's partition of the whole
  split among M clients; the victim and its peers are its lowest-numbered clients whose shards
  hold a batch.

The federation that trains the global model is not changed by the heterogeneity: it follows
its stage's own ``split``. A grid pairs them where the paper determines the federation: Table 6
zips each victim's ``dirichlet`` α with a stage ``split = "dirichlet_pfllib"`` of the same α
(PFLlib's partition, drawn from the stage's stream, so the victim's partition is a separate
draw of the same kind, as its IID batch is today). Table 5 keeps the IID federation: the text
does not say how the other 99 clients' classes, quantities or TV groups were chosen, and it
credits the effect to the victim's data ("single-class clients ... simpler features").

Departures from the paper (FedLeak gives no procedure but PFLlib's for Dirichlet):

- Label, quantity and feature skew draw only the participants' shards, not the other clients'
  of a federation: a participant's shard has the same distribution either way, and the text
  does not say how the other 99 clients' quantities or bands are chosen.
- Label skew's classes are drawn uniformly for every participant; NIID-Bench gives client i
  class i mod K first (so that every class has a holder), which would make the victim (client
  0) always hold class 0.
- Feature skew ranks images by the anisotropic TV of their [0, 1] pixels, the mean absolute
  difference of horizontal plus that of vertical neighbours (inversefed's, the attacks'
  ``total_variation``), at the grid's resolution; the paper does not say which TV.
- Dirichlet: PFLlib partitions its merged train and test sets and then keeps 75 % of each
  shard for training; here the victims' split is partitioned and a shard is the whole local
  dataset. PFLlib's later minimum of min(40, N/2M) images per client cannot be met with 100
  clients at alpha = 0.1 on 5 classes (0 of 200 draws), so the default is its earlier 1; the
  redraw stops after :data:`MAX_PARTITION_DRAWS` tries instead of looping forever. The victim
  is the first client, in index order, whose shard holds the batch (PFLlib's clients are
  exchangeable; a client with fewer images than the batch could not train on one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from evalgrid.errors import UserError

MAX_PARTITION_DRAWS = 10_000  # PFLlib redraws until every client holds least_samples; we give up here


def shard_size(num_samples: int, clients: int, samples_per_client: int) -> int:
    """Samples per client: ``samples_per_client``, or (0) the split divided evenly among them."""
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    size = samples_per_client or num_samples // clients
    if size < 1:
        raise ValueError(f"{clients} clients cannot share a training split of {num_samples} samples "
                         f"(each needs at least one)")
    if size * clients > num_samples:
        raise ValueError(f"{clients} clients × {size} samples need {clients * size} samples, "
                         f"but the training split has {num_samples}")
    return size


def iid_partition(num_samples: int, clients: int, samples_per_client: int,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint shards of equal size drawn uniformly at random without replacement; samples
    left over when the split does not divide evenly belong to no client."""
    size = shard_size(num_samples, clients, samples_per_client)
    order = rng.permutation(num_samples)
    return [np.sort(order[client * size:(client + 1) * size]) for client in range(clients)]


def dirichlet_partition(labels: np.ndarray, clients: int, samples_per_client: int, alpha: float,
                        rng: np.random.Generator) -> list[np.ndarray]:
    """Label-skewed disjoint shards of equal size: client m draws its class proportions
    p_m ~ Dir(α·1) and then its samples class by class from p_m. Small α concentrates each
    client on few classes; large α approaches the IID split.

    Running out of a class: clients are served in order (0, 1, ...); each class's samples are
    shuffled once and handed out without replacement. When a client's draw asks for more of
    a class than is left, it takes what is left and draws its remaining samples again from
    its own proportions restricted to the classes that still have samples (renormalised;
    uniform over them if its proportions put no mass there). So every client gets exactly
    its shard size, and later clients are pushed towards the classes earlier ones left over.
    """
    labels = np.asarray(labels)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    size = shard_size(len(labels), clients, samples_per_client)
    classes = np.unique(labels)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    proportions = rng.dirichlet(np.full(len(classes), float(alpha)), size=clients)
    shards = []
    for client in range(clients):
        taken: list[int] = []
        while len(taken) < size:
            left = np.array([len(pool) for pool in pools])
            weights = np.where(left > 0, proportions[client], 0.0)
            weights = weights / weights.sum() if weights.sum() > 0 else (left > 0) / (left > 0).sum()
            wanted = rng.multinomial(size - len(taken), weights)
            for index, count in enumerate(wanted):
                grabbed = min(int(count), len(pools[index]))
                taken.extend(pools[index][:grabbed])
                del pools[index][:grabbed]
        shards.append(np.sort(np.asarray(taken, dtype=np.int64)))
    return shards


def pfllib_dirichlet_partition(labels: np.ndarray, clients: int, alpha: float, least_samples: int,
                               rng: np.random.Generator) -> list[np.ndarray]:
    """PFLlib's ``separate_data(partition="dir")`` (dataset/utils/dataset_utils.py): the whole
    split among M clients. Class by class (in increasing label order), the class's indices are
    shuffled, client proportions p ~ Dir(α·1_M) drawn, p_j zeroed for every client j already
    holding at least N/M images, renormalised, and the shuffled indices cut at
    ⌊N_k·cumsum(p)⌋. The whole draw is repeated until every client holds at least
    ⌊min(least_samples, N/(2M))⌋ images. Every index goes to exactly one client."""
    labels = np.asarray(labels)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    total = len(labels)
    if clients < 1 or clients > total:
        raise ValueError(f"{clients} clients cannot share a split of {total} images")
    least = int(min(least_samples, total / clients / 2))
    for _ in range(MAX_PARTITION_DRAWS):
        shards = _pfllib_dirichlet_draw(labels, clients, alpha, rng)
        if shards is not None and min(len(shard) for shard in shards) >= least:
            return [np.sort(np.asarray(shard, dtype=np.int64)) for shard in shards]
    raise ValueError(f"no Dirichlet partition (alpha = {alpha}) of {total} images among {clients} clients gave every "
                     f"client at least {least} images in {MAX_PARTITION_DRAWS:,} draws: lower least_samples or "
                     f"clients, or raise alpha")


def _pfllib_dirichlet_draw(labels: np.ndarray, clients: int, alpha: float,
                           rng: np.random.Generator) -> list[list[int]] | None:
    """One draw of PFLlib's loop; None when every client still open drew a zero proportion."""
    total = len(labels)
    shards: list[list[int]] = [[] for _ in range(clients)]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        proportions = rng.dirichlet(np.full(clients, float(alpha)))
        proportions = proportions * np.array([len(shard) < total / clients for shard in shards])
        if not proportions.sum() > 0:
            return None
        cuts = (np.cumsum(proportions / proportions.sum()) * len(members)).astype(int)[:-1]
        for shard, part in zip(shards, np.split(members, cuts)):
            shard.extend(part.tolist())
    return shards


# --- the victim's local data under heterogeneity (the `heterogeneity` factor) ----------------

class Heterogeneity(Protocol):
    def shards(self, dataset: Any, participants: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Disjoint index arrays into ``dataset``, one per participant (the victim's first), each
        holding at least ``batch_size`` images."""
        ...


def _evenly(count: int, parts: int) -> list[int]:
    """``count`` shared by ``parts``: the first count mod parts get one more."""
    return [count // parts + (part < count % parts) for part in range(parts)]


def _chunks(order: np.ndarray, participants: int, samples: int) -> list[np.ndarray]:
    return [np.sort(order[p * samples:(p + 1) * samples]) for p in range(participants)]


@dataclass(frozen=True)
class LabelSkew:
    """Each participant holds ``samples`` images of ``classes`` distinct classes drawn at
    random, shared evenly by them, drawn without replacement from what earlier participants left."""

    classes: int
    samples: int

    def shards(self, dataset: Any, participants: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        labels = np.asarray(dataset.labels)
        present = np.unique(labels)
        if self.classes > len(present):
            raise ValueError(f"label skew of {self.classes} classes per client, but the split has {len(present)}")
        pools = {label: list(rng.permutation(np.flatnonzero(labels == label))) for label in present}
        shards = []
        for _ in range(participants):
            chosen = rng.choice(present, size=self.classes, replace=False)
            taken: list[int] = []
            for label, count in zip(chosen, _evenly(self.samples, self.classes)):
                if count > len(pools[label]):
                    raise ValueError(f"label skew: class {label} has {len(pools[label])} images left for a client "
                                     f"that needs {count} of it ({self.samples} images over {self.classes} "
                                     f"classes); lower samples")
                taken.extend(pools[label][:count])
                del pools[label][:count]
            shards.append(np.sort(np.asarray(taken, dtype=np.int64)))
        return shards


@dataclass(frozen=True)
class QuantitySkew:
    """Each participant holds ``samples`` images drawn uniformly without replacement."""

    samples: int

    def shards(self, dataset: Any, participants: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        needed = participants * self.samples
        if needed > len(dataset):
            raise ValueError(f"{participants} client(s) × {self.samples} images need {needed}, but the split has "
                             f"{len(dataset)}")
        return _chunks(rng.permutation(len(dataset))[:needed], participants, self.samples)


@dataclass(frozen=True)
class FeatureSkew:
    """Each participant holds ``samples`` images drawn uniformly from those whose total
    variation lies in the band: at least its lower percentile and below its upper one (the
    last band includes the maximum). Percentiles are numpy's (linear interpolation)."""

    band: str  # "20-40": percentiles 20 to 40
    samples: int

    def members(self, dataset: Any) -> np.ndarray:
        lower, upper = (float(bound) for bound in self.band.split("-"))
        variation = total_variations(dataset)
        low, high = np.percentile(variation, [lower, upper])
        inside = (variation >= low) & ((variation <= high) if upper == 100 else (variation < high))
        return np.flatnonzero(inside)

    def shards(self, dataset: Any, participants: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        members = self.members(dataset)
        needed = participants * self.samples
        if needed > len(members):
            raise ValueError(f"feature skew: {participants} client(s) × {self.samples} images need {needed}, but "
                             f"only {len(members)} images of the split lie in the {self.band} % band of total "
                             f"variation; lower samples")
        return _chunks(rng.permutation(members)[:needed], participants, self.samples)


@dataclass(frozen=True)
class Dirichlet:
    """PFLlib's partition of the split among ``clients``; the participants are its
    lowest-numbered clients whose shards hold a batch."""

    alpha: float
    clients: int
    least_samples: int

    def shards(self, dataset: Any, participants: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        partition = pfllib_dirichlet_partition(np.asarray(dataset.labels), self.clients, self.alpha,
                                               self.least_samples, rng)
        fitting = [shard for shard in partition if len(shard) >= batch_size]
        if len(fitting) < participants:
            raise ValueError(f"Dirichlet partition (alpha = {self.alpha}, {self.clients} clients): {len(fitting)} "
                             f"client(s) hold a batch of {batch_size}, the round needs {participants}; lower "
                             f"batch_size or clients")
        return fitting[:participants]


def label_skew(options: Any) -> LabelSkew:
    return LabelSkew(options.classes, options.samples)


def quantity_skew(options: Any) -> QuantitySkew:
    return QuantitySkew(options.samples)


def feature_skew(options: Any) -> FeatureSkew:
    return FeatureSkew(options.band, options.samples)


def dirichlet(options: Any) -> Dirichlet:
    return Dirichlet(options.alpha, options.clients, options.least_samples)


@functools.lru_cache(maxsize=4)  # per dataset object (load_dataset caches those): every cell of a split shares it
def total_variations(dataset: Any, chunk: int = 256) -> np.ndarray:
    """Every image's anisotropic total variation in [0, 1] pixels: the mean absolute difference
    of horizontal neighbours plus that of vertical ones (float64, index order)."""
    values = []
    for start in range(0, len(dataset), chunk):
        images, _ = dataset.batch(list(range(start, min(start + chunk, len(dataset)))))
        pixels = images.double().numpy()
        values.append(np.abs(np.diff(pixels, axis=-1)).mean(axis=(1, 2, 3))
                      + np.abs(np.diff(pixels, axis=-2)).mean(axis=(1, 2, 3)))
    return np.concatenate(values) if values else np.zeros(0)


# --- checks before dispatch (launch/preflight.py): every participant's shard holds its batch ---

def _fixed_shards_fit(samples: int, images: int, participants: int, batch_size: int, where: str) -> None:
    if batch_size > samples:
        raise UserError(f"batch_size {batch_size} is larger than the client's local dataset of samples = {samples} "
                        f"images, which the batch is drawn from: lower batch_size or raise samples.")
    if participants * samples > images:
        raise UserError(f"{participants} client(s) × samples = {samples} images need {participants * samples}, but "
                        f"{where} has {images}: lower samples.")


def preflight_label_skew(options: Any, split_size: int, participants: int, batch_size: int) -> None:
    if options.samples < options.classes:
        raise UserError(f"samples = {options.samples} cannot hold classes = {options.classes} (an image of each "
                        f"class at least): raise samples.")
    _fixed_shards_fit(options.samples, split_size, participants, batch_size, "the victims' split")


def preflight_quantity_skew(options: Any, split_size: int, participants: int, batch_size: int) -> None:
    _fixed_shards_fit(options.samples, split_size, participants, batch_size, "the victims' split")


def preflight_feature_skew(options: Any, split_size: int, participants: int, batch_size: int) -> None:
    lower, upper = (int(bound) for bound in options.band.split("-"))
    band = split_size * (upper - lower) // 100  # about this many images lie in the band (ties move a few)
    _fixed_shards_fit(options.samples, band, participants, batch_size, f"the {options.band} % band of the split")


def preflight_dirichlet(options: Any, split_size: int, participants: int, batch_size: int) -> None:
    """Shard sizes are drawn: the victim is a client whose shard holds the batch (checked when
    the partition is drawn); here only what no draw can satisfy."""
    if participants > options.clients:
        raise UserError(f"the round has {participants} clients (secure aggregation), more than the partition's "
                        f"clients = {options.clients}: raise clients.")
    if options.clients > split_size or batch_size * participants > split_size:
        raise UserError(f"clients = {options.clients} and {participants} batch(es) of {batch_size} cannot be drawn "
                        f"from the victims' split of {split_size} images: lower clients or batch_size.")
