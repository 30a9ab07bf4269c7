"""Splitting a training set among the federation's clients: IID shards, or label skew with
per-client class proportions drawn from a symmetric Dirichlet (Hsu et al. 2019, as FedLeak
Sec. 6.3 varies it). Every draw comes from the ``rng`` passed in, so a seed fixes the split.
"""

from __future__ import annotations

import numpy as np


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
