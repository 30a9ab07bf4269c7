"""CIFAR-10/100 read from a local root in torchvision's on-disk format."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from evalgrid.catalogue import DATASETS
from evalgrid.data.cifar import CifarOptions
from evalgrid.errors import UserError

try:
    from tests.fakedata import write_tiny_cifar10, write_tiny_cifar100
except ImportError:  # tests/ itself on sys.path
    from fakedata import write_tiny_cifar10, write_tiny_cifar100

WRITERS = {"cifar10": write_tiny_cifar10, "cifar100": write_tiny_cifar100}
FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CLASSES = {"cifar10": 10, "cifar100": 100}


def load(name, root, split="train"):
    return DATASETS[name].build(CifarOptions(split=split), root)


def preflight(name, root, split="train"):
    return DATASETS[name].preflight(CifarOptions(split=split), root)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_pixels_and_labels_round_trip_exactly(tmp_path, name, split):
    written = WRITERS[name](tmp_path, n_train=12, n_test=5, seed=3)[split]
    dataset = load(name, tmp_path, split)

    images, labels = dataset.batch(list(range(len(dataset))))
    expected = torch.from_numpy(written.data.reshape(-1, 3, 32, 32)).float() / 255
    assert len(dataset) == len(written.labels)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert torch.equal(images, expected)
    assert torch.equal(labels, torch.from_numpy(written.labels))
    assert torch.equal(dataset.labels, torch.from_numpy(written.labels))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_each_row_is_three_row_major_colour_planes(tmp_path, name):
    written = WRITERS[name](tmp_path, n_train=6, n_test=2)["train"]
    image, _ = load(name, tmp_path).batch([4])
    channel, y, x = 1, 5, 7  # green plane, row 5, column 7
    assert image[0, channel, y, x] == written.data[4, channel * 1024 + y * 32 + x] / np.float32(255)


def test_batch_returns_the_requested_indices_in_order(tmp_path):
    written = write_tiny_cifar10(tmp_path, n_train=10)["train"]
    images, labels = load("cifar10", tmp_path).batch([7, 2, 7])
    assert torch.equal(labels, torch.from_numpy(written.labels[[7, 2, 7]]))
    assert torch.equal(images[1], torch.from_numpy(written.data[2].reshape(3, 32, 32)).float() / 255)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_info_describes_32x32_colour_images(tmp_path, name):
    WRITERS[name](tmp_path)
    info = load(name, tmp_path).info
    assert (info.name, info.channels, info.resolution, info.num_classes) == (name, 3, 32, CLASSES[name])
    assert len(info.normalization.mean) == len(info.normalization.std) == 3


def test_only_the_requested_split_is_read(tmp_path):
    write_tiny_cifar10(tmp_path, n_train=10, n_test=3)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert len(load("cifar10", tmp_path, "test")) == 3


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_no_data_root_explains_how_to_provide_one(name):
    with pytest.raises(UserError) as caught:
        preflight(name, None)
    message = str(caught.value)
    for needed in (f"dataset {name!r}", "[data] root", "EVALGRID_DATA", FOLDERS[name] + "/", "download=True"):
        assert needed in message


@pytest.mark.parametrize("name, missing", [("cifar10", "data_batch_4"), ("cifar100", "train")])
def test_a_missing_file_is_named_by_its_path(tmp_path, name, missing):
    WRITERS[name](tmp_path)
    path = tmp_path / FOLDERS[name] / missing
    path.unlink()
    for check in (preflight, load):
        with pytest.raises(UserError, match=str(path)):
            check(name, tmp_path)


def test_an_empty_root_names_the_first_expected_file(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "cifar-10-batches-py" / "test_batch")):
        preflight("cifar10", tmp_path, "test")


def rewrite(path, content):
    with open(path, "wb") as f:
        if isinstance(content, bytes):
            f.write(content)
        else:
            pickle.dump(content, f, protocol=2)


CORRUPTIONS = {
    "truncated": lambda path: path.read_bytes()[:100],
    "not a dict": lambda path: [1, 2, 3],
    "wrong label key": lambda path: {b"data": np.zeros((2, 3072), np.uint8), b"coarse": [0, 1]},
    "wrong row length": lambda path: {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1],
                                      b"fine_labels": [0, 1]},
    "float pixels": lambda path: {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1],
                                  b"fine_labels": [0, 1]},
    "too few labels": lambda path: {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0],
                                    b"fine_labels": [0]},
    "label out of range": lambda path: {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 100],
                                        b"fine_labels": [0, 100]},
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("name, file", [("cifar10", "data_batch_2"), ("cifar100", "train")])
def test_a_file_that_is_not_a_valid_batch_is_named(tmp_path, name, file, corruption):
    WRITERS[name](tmp_path)
    path = tmp_path / FOLDERS[name] / file
    rewrite(path, CORRUPTIONS[corruption](path))
    for check in (preflight, load):
        with pytest.raises(UserError, match=f"{path} is not a valid CIFAR"):
            check(name, tmp_path)


class _MakesADirectory:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


def test_a_pickle_that_calls_a_function_is_refused_without_running_it(tmp_path):
    write_tiny_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    rewrite(path, {b"data": _MakesADirectory(tmp_path / "ran"), b"labels": []})
    with pytest.raises(UserError, match=f"{path} is not a valid CIFAR-10 batch.*refusing"):
        preflight("cifar10", tmp_path, "test")
    assert not (tmp_path / "ran").exists()


def test_a_valid_root_passes_preflight_which_counts_the_images(tmp_path):
    write_tiny_cifar10(tmp_path)  # 10 train images over five batch files, 4 test
    write_tiny_cifar100(tmp_path)
    for name in ("cifar10", "cifar100"):
        assert (preflight(name, tmp_path, "train"), preflight(name, tmp_path, "test")) == (10, 4)
