"""Non-IID clients (the ``heterogeneity`` factor, FedLeak Tables 5-6): each partition's defining
property checked against an independent computation, the victim's batch drawn from its shard,
secure-aggregation peers on shards of their own, cell ids of grids without the factor unchanged,
and what cannot run refused before anything does."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from evalgrid.catalogue import HETEROGENEITIES
from evalgrid.catalogue.options import parse_options
from evalgrid.data.base import DatasetInfo, InMemoryImages
from evalgrid.evaluation.building import PARTITION_STREAM, stream_seed
from evalgrid.fl.client import client_batches
from evalgrid.fl.options import FedAvgStageOptions
from evalgrid.fl.partition import Dirichlet, FeatureSkew, LabelSkew, QuantitySkew, pfllib_dirichlet_partition
from evalgrid.fl.threat_model import Normalization
from evalgrid.grid import load_grid

CLASSES = 5
LABELS = np.repeat(np.arange(CLASSES), [120, 80, 100, 60, 140])  # 500 images, unequal classes


class Labelled:
    """A split reduced to what label-based partitions read."""

    def __init__(self, labels: np.ndarray):
        self.labels = torch.as_tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)


def textured_split(count: int = 200, side: int = 8) -> InMemoryImages:
    """Images from flat to noisy: image i is a grey level plus noise of amplitude i/count."""
    generator = torch.Generator().manual_seed(0)
    amplitude = torch.rand(count, generator=generator).view(-1, 1, 1, 1)
    images = (0.5 + amplitude * (torch.rand(count, 1, side, side, generator=generator) - 0.5)).clamp(0, 1)
    info = DatasetInfo("textured", 1, side, 2, Normalization((0.5,), (0.5,)))
    return InMemoryImages(images, torch.arange(count) % 2, info)


def tv_by_hand(images: np.ndarray) -> np.ndarray:
    """Anisotropic total variation of each (C, H, W) image, written out."""
    out = []
    for image in images:
        horizontal = np.abs(image[:, :, 1:] - image[:, :, :-1]).mean()
        vertical = np.abs(image[:, 1:, :] - image[:, :-1, :]).mean()
        out.append(horizontal + vertical)
    return np.array(out)


def assert_disjoint(shards: list[np.ndarray]) -> None:
    everything = np.concatenate(shards)
    assert len(np.unique(everything)) == len(everything)


@pytest.mark.parametrize("classes", [1, 2, 3, 4, 5])
def test_label_skew_gives_each_client_exactly_c_classes_sharing_its_images_evenly(classes):
    shards = LabelSkew(classes, 40).shards(Labelled(LABELS), 4, 8, np.random.default_rng(classes))
    assert_disjoint(shards)
    for shard in shards:
        counts = np.bincount(LABELS[shard], minlength=CLASSES)
        held = counts[counts > 0]
        assert len(shard) == 40 and len(held) == classes
        assert held.max() - held.min() <= 1


def test_quantity_skew_gives_each_client_a_local_dataset_of_the_asked_size():
    shards = QuantitySkew(150).shards(Labelled(LABELS), 3, 32, np.random.default_rng(0))
    assert [len(shard) for shard in shards] == [150, 150, 150]
    assert_disjoint(shards)


@pytest.mark.parametrize("band", ["0-20", "20-40", "40-60", "60-80", "80-100"])
def test_feature_skew_images_lie_between_their_bands_percentiles_of_total_variation(band):
    split = textured_split()
    variation = tv_by_hand(split.batch(list(range(len(split))))[0].double().numpy())
    lower, upper = np.percentile(variation, [float(bound) for bound in band.split("-")])
    shards = FeatureSkew(band, 12).shards(split, 3, 4, np.random.default_rng(0))
    assert_disjoint(shards)
    for shard in shards:
        assert len(shard) == 12
        assert np.all(variation[shard] >= lower - 1e-12) and np.all(variation[shard] <= upper + 1e-12)


def test_feature_skew_bands_split_the_images_into_fifths_without_overlap():
    split = textured_split()
    bands = [FeatureSkew(band, 1).members(split) for band in ("0-20", "20-40", "40-60", "60-80", "80-100")]
    assert_disjoint(bands)
    assert sorted(np.concatenate(bands).tolist()) == list(range(len(split)))
    assert [len(band) for band in bands] == [40] * 5  # distinct values: exactly a fifth each


def test_pfllib_dirichlet_partition_assigns_every_image_to_exactly_one_client():
    shards = pfllib_dirichlet_partition(LABELS, clients=10, alpha=0.5, least_samples=5, rng=np.random.default_rng(0))
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(LABELS)))
    assert min(len(shard) for shard in shards) >= 5  # PFLlib's redraw: min(least_samples, N/2M) = min(5, 25)


def test_pfllib_dirichlet_gives_no_more_images_to_a_client_that_already_holds_its_share():
    """PFLlib zeroes the proportion of every client holding N/M images before the next class."""
    shards = pfllib_dirichlet_partition(LABELS, clients=10, alpha=0.3, least_samples=1, rng=np.random.default_rng(1))
    share = len(LABELS) / 10
    for shard in shards:
        counts = np.bincount(LABELS[shard], minlength=CLASSES)
        before = np.concatenate([[0], np.cumsum(counts)[:-1]])  # images held before each class is dealt
        assert np.all(counts[before >= share] == 0)


def test_small_alpha_concentrates_pfllib_clients_on_few_classes():
    def median_top_share(alpha: float) -> float:
        shards = pfllib_dirichlet_partition(LABELS, 10, alpha, 1, np.random.default_rng(2))
        return float(np.median([np.bincount(LABELS[s], minlength=CLASSES).max() / len(s) for s in shards]))

    assert median_top_share(0.1) > 0.6 > 0.35 > median_top_share(100.0)  # 5 classes: 0.2 is a uniform share


def test_the_dirichlet_victim_and_peers_are_the_first_clients_whose_shards_hold_the_batch():
    partition = pfllib_dirichlet_partition(LABELS, 10, 0.3, 1, np.random.default_rng(3))
    wanted = [shard for shard in partition if len(shard) >= 45][:2]
    shards = Dirichlet(0.3, 10, 1).shards(Labelled(LABELS), 2, 45, np.random.default_rng(3))
    assert len(shards) == 2 and all(np.array_equal(a, b) for a, b in zip(shards, wanted))


GRID = """
name = "noniid"
metrics = ["psnr"]

[factors]
dataset = [{ name = "digits", resolution = 16 }]
model = [{ name = "convnet", width = 4 }]
attack = [{ name = "ig", iterations = 2 }]
batch_size = [6]
heterogeneity = [HETEROGENEITY]
labels = ["known"]
seed = [4]
"""


def one_cell(write_grid, heterogeneity: str, name: str = "grid.toml"):
    return load_grid(write_grid(GRID.replace("HETEROGENEITY", heterogeneity), name)).cells[0]


def test_each_participants_batch_is_drawn_from_its_own_shard_and_no_two_share_an_image(write_grid):
    from evalgrid.evaluation.building import load_dataset

    cell = one_cell(write_grid, '{ name = "label_skew", classes = 1, samples = 20 }')
    dataset = load_dataset(cell.dataset, cell.resolution, None)
    batches = client_batches(cell, dataset, 3)  # the victim and two secure-aggregation peers
    heterogeneity = HETEROGENEITIES["label_skew"].build(cell.heterogeneity.options)
    shards = heterogeneity.shards(dataset, 3, 6, np.random.default_rng(stream_seed(cell.seed, PARTITION_STREAM)))
    for batch, shard in zip(batches, shards):
        assert len(batch) == 6 and set(batch) <= set(shard.tolist())
        assert len(set(dataset.labels[batch].tolist())) == 1  # one class: the shard's
    assert_disjoint([np.array(batch) for batch in batches])


def test_a_cell_without_heterogeneity_keeps_the_id_of_its_config_without_the_key(write_grid):
    cell = one_cell(write_grid, '"none"')
    body = cell.canonical()
    assert "heterogeneity" not in body and cell.heterogeneity is None
    by_hand = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert cell.cell_id == by_hand
    skewed = one_cell(write_grid, '"quantity_skew"', "skewed.toml")
    assert "heterogeneity" in skewed.canonical() and skewed.cell_id != cell.cell_id


def test_an_iid_cell_draws_the_same_batch_as_before_the_factor_existed(write_grid):
    """No heterogeneity: B distinct images of the whole split from the seed's batch stream."""
    from evalgrid.evaluation.building import BATCH_STREAM, load_dataset

    cell = one_cell(write_grid, '"none"')
    dataset = load_dataset(cell.dataset, cell.resolution, None)
    order = np.random.default_rng(stream_seed(cell.seed, BATCH_STREAM)).choice(len(dataset), size=12, replace=False)
    assert client_batches(cell, dataset, 2) == [sorted(order[:6].tolist()), sorted(order[6:].tolist())]


@pytest.mark.parametrize(("value", "message"), [
    ('{ name = "feature_skew", band = "10-30" }', "'10-30' is not allowed"),
    ('{ name = "dirichlet", alpha = 0.0 }', "must be > 0"),
    ('{ name = "label_skew", classes = 0 }', "must be >= 1"),
    ('"label_skewed"', "unknown heterogeneity 'label_skewed'"),
])
def test_an_invalid_heterogeneity_is_refused_when_the_grid_is_read(write_grid, cli, value, message):
    result = cli("plan", write_grid(GRID.replace("HETEROGENEITY", value)))
    assert result.exit_code == 2 and message in result.output and "heterogeneity" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ['{ name = "quantity_skew", samples = 5 }',
                                   '{ name = "label_skew", classes = 2, samples = 4 }',
                                   '{ name = "feature_skew", samples = 5 }'])
def test_a_batch_larger_than_the_local_dataset_is_refused_before_dispatch(write_grid, cli, value):
    path = write_grid(GRID.replace("HETEROGENEITY", value))
    result = cli("plan", path, "--check")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{path}: factors.heterogeneity" in result.output and "batch_size 6 is larger" in result.output


def test_a_dirichlet_partition_with_fewer_clients_than_the_round_is_refused_before_dispatch(write_grid, cli):
    text = GRID.replace("HETEROGENEITY", '{ name = "dirichlet", clients = 2 }').replace(
        'labels = ["known"]', 'labels = ["known"]\ndefense = [{ name = "secure_aggregation", clients = 3 }]')
    result = cli("plan", write_grid(text), "--check")
    assert result.exit_code == 2 and "more than the partition's clients = 2" in result.output


def test_the_pfllib_federation_partitions_the_whole_training_split():
    from evalgrid.data.options import DigitsOptions
    from evalgrid.evaluation.building import load_dataset
    from evalgrid.fl.fedavg import client_shards
    from evalgrid.fl.stage import StageRequest
    from evalgrid.grid.cell import Choice

    stage = parse_options(FedAvgStageOptions, {"split": "dirichlet_pfllib", "alpha": 0.5, "clients": 10})
    digits = Choice("digits", DigitsOptions(resolution=16))
    request = StageRequest(digits, 0, Choice("convnet", None), Choice("default", None), Choice("fedavg", stage), 0)
    train = load_dataset(digits, 0, None, split="train")
    shards = client_shards(request, train)
    assert len(shards) == 10 and sorted(np.concatenate(shards).tolist()) == list(range(len(train)))
