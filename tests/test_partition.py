"""Splitting the training set among clients: IID shards and Dirichlet label skew."""

from __future__ import annotations

import numpy as np
import pytest

from evalgrid.fl.partition import dirichlet_partition, iid_partition

CLASSES = 10
LABELS = np.repeat(np.arange(CLASSES), 500)  # 5,000 samples, 500 per class


def max_class_share(labels: np.ndarray, shard: np.ndarray) -> float:
    return np.bincount(labels[shard], minlength=CLASSES).max() / len(shard)


def assert_disjoint(shards: list[np.ndarray]) -> None:
    everything = np.concatenate(shards)
    assert len(np.unique(everything)) == len(everything)


def test_iid_shards_are_disjoint_and_of_the_asked_size():
    shards = iid_partition(100, clients=4, samples_per_client=16, rng=np.random.default_rng(0))
    assert [len(s) for s in shards] == [16] * 4
    assert_disjoint(shards)
    assert all(0 <= s.min() and s.max() < 100 for s in shards)


def test_iid_zero_samples_per_client_divides_the_split_evenly():
    shards = iid_partition(103, clients=10, samples_per_client=0, rng=np.random.default_rng(0))
    assert [len(s) for s in shards] == [10] * 10
    assert_disjoint(shards)


def test_iid_split_is_fixed_by_the_rng_seed():
    first = iid_partition(100, 4, 16, np.random.default_rng(7))
    again = iid_partition(100, 4, 16, np.random.default_rng(7))
    other = iid_partition(100, 4, 16, np.random.default_rng(8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_asking_for_more_samples_than_the_split_has_fails():
    with pytest.raises(ValueError, match="need 120 samples"):
        iid_partition(100, clients=4, samples_per_client=30, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="need"):
        dirichlet_partition(LABELS, clients=100, samples_per_client=51, alpha=1.0, rng=np.random.default_rng(0))


def test_dirichlet_shards_are_disjoint_and_of_the_asked_size():
    shards = dirichlet_partition(LABELS, clients=20, samples_per_client=100, alpha=0.5, rng=np.random.default_rng(0))
    assert [len(s) for s in shards] == [100] * 20
    assert_disjoint(shards)


def test_small_alpha_concentrates_each_client_on_few_classes():
    shards = dirichlet_partition(LABELS, clients=20, samples_per_client=100, alpha=0.05, rng=np.random.default_rng(0))
    shares = [max_class_share(LABELS, s) for s in shards]
    assert np.median(shares) > 0.7


def test_large_alpha_gives_near_uniform_label_histograms():
    shards = dirichlet_partition(LABELS, clients=20, samples_per_client=100, alpha=1000.0,
                                 rng=np.random.default_rng(0))
    shares = [max_class_share(LABELS, s) for s in shards]
    assert max(shares) < 0.25  # uniform is 0.1; a multinomial of 100 draws rarely exceeds 0.2


def test_dirichlet_can_use_every_sample_when_classes_run_out():
    labels = np.array([0] * 300 + [1] * 60 + [2] * 40)  # imbalanced: class 0 dominates
    shards = dirichlet_partition(labels, clients=8, samples_per_client=50, alpha=0.1, rng=np.random.default_rng(3))
    assert sorted(np.concatenate(shards).tolist()) == list(range(400))


def test_dirichlet_split_is_fixed_by_the_rng_seed():
    first = dirichlet_partition(LABELS, 20, 100, 0.5, np.random.default_rng(1))
    again = dirichlet_partition(LABELS, 20, 100, 0.5, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
