"""MNIST, SVHN, image folders and ImageNet's validation set read from local roots in their real
on-disk formats; describe(); the resolution factor (at_resolution); the grid loader."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image

from evalgrid.data.base import at_resolution
from evalgrid.catalogue import DATASETS
from evalgrid.data.cifar import CifarOptions
from evalgrid.data.digits import DigitsOptions
from evalgrid.data.photos import PhotoOptions
from evalgrid.data.folder import ImageFolderOptions, ImageNetOptions
from evalgrid.data.mnist import MnistOptions, read_idx
from evalgrid.data.svhn import SvhnOptions
from evalgrid.errors import UserError
from evalgrid.grid import load_grid

try:
    from tests.fakedata import (MNIST_FILES, idx_bytes, imagenet_wnids, write_image_folder, write_tiny_cifar10,
                                write_tiny_imagenet_val, write_tiny_mnist, write_tiny_svhn)
except ImportError:  # tests/ itself on sys.path
    from fakedata import (MNIST_FILES, idx_bytes, imagenet_wnids, write_image_folder, write_tiny_cifar10,
                          write_tiny_imagenet_val, write_tiny_mnist, write_tiny_svhn)

ROOT_HINTS = ("[data] root", "EVALGRID_DATA")


def as_float(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels)).float() / 255


def hwc(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) as the (3, H, W) float image a dataset returns."""
    return as_float(pixels.transpose(2, 0, 1))


def everything(dataset):
    return dataset.batch(list(range(len(dataset))))


def fails_naming(check, *needles):
    with pytest.raises(UserError) as caught:
        check()
    for needle in needles:
        assert str(needle) in str(caught.value)
    return str(caught.value)


# ---- MNIST ------------------------------------------------------------------------------

def mnist(root, split="train"):
    return DATASETS["mnist"].build(MnistOptions(split=split), root)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_reads_back_pixels_labels_and_order(tmp_path, split, gz):
    written = write_tiny_mnist(tmp_path, n_train=7, n_test=3, gz=gz, seed=1)[split]
    dataset = mnist(tmp_path, split)
    images, labels = everything(dataset)
    assert images.shape == (len(written.labels), 1, 28, 28) and images.dtype == torch.float32
    assert torch.equal(images[:, 0], as_float(written.data))
    assert torch.equal(labels, torch.from_numpy(written.labels)) and labels.dtype == torch.int64
    assert torch.equal(dataset.labels, labels)
    assert torch.equal(dataset.batch([2, 0])[1], torch.from_numpy(written.labels[[2, 0]]))


def test_idx_parser_reads_any_idx_type_big_endian():
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    content = idx_bytes(values.astype(">i4"), type_code=0x0C)
    assert np.array_equal(read_idx(content), values)


def test_mnist_missing_root_says_how_to_get_it():
    fails_naming(lambda: DATASETS["mnist"].preflight(MnistOptions(), None),
                 "'mnist'", "MNIST/raw", "torchvision.datasets.MNIST", "download=True", *ROOT_HINTS)


def test_mnist_missing_file_names_its_path(tmp_path):
    write_tiny_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.unlink()
    for check in (DATASETS["mnist"].preflight, DATASETS["mnist"].build):
        fails_naming(lambda: check(MnistOptions(split="test"), tmp_path), path, "torchvision.datasets.MNIST",
                     *ROOT_HINTS)


def mnist_images(count=2, rows=28):
    return idx_bytes(np.zeros((count, rows, 28), np.uint8))


MNIST_DAMAGE = {  # file -> what replaces it
    "truncated images": ("train-images-idx3-ubyte", lambda old: old[:-5]),
    "foreign file": ("train-images-idx3-ubyte", lambda old: b"\x89PNG\r\n\x1a\n" + bytes(100)),
    "unknown type code": ("train-images-idx3-ubyte", lambda old: old[:2] + b"\x07" + old[3:]),
    "wrong image side": ("train-images-idx3-ubyte", lambda old: mnist_images(rows=27)),
    "labels of another split": ("train-labels-idx1-ubyte", lambda old: idx_bytes(np.zeros(3, np.uint8))),
    "label out of range": ("train-labels-idx1-ubyte",
                           lambda old: idx_bytes(np.full(10, 10, np.uint8))),
    "int32 labels": ("train-labels-idx1-ubyte", lambda old: idx_bytes(np.zeros(10, ">i4"), 0x0C)),
}


@pytest.mark.parametrize("damage", MNIST_DAMAGE)
def test_a_damaged_mnist_file_is_named(tmp_path, damage):
    write_tiny_mnist(tmp_path, n_train=10)
    file, replace = MNIST_DAMAGE[damage]
    path = tmp_path / "MNIST" / "raw" / file
    path.write_bytes(replace(path.read_bytes()))
    for check in (DATASETS["mnist"].preflight, DATASETS["mnist"].build):
        fails_naming(lambda: check(MnistOptions(), tmp_path), f"{path} is not a valid MNIST IDX file")


def test_a_damaged_gzip_is_named(tmp_path):
    write_tiny_mnist(tmp_path, gz=True)
    path = tmp_path / "MNIST" / "raw" / (MNIST_FILES["test"][0] + ".gz")
    path.write_bytes(path.read_bytes()[:30])
    fails_naming(lambda: DATASETS["mnist"].preflight(MnistOptions(split="test"), tmp_path), str(path))


def test_a_gzip_that_expands_beyond_its_header_is_refused_after_reading_only_what_it_announces(tmp_path):
    write_tiny_mnist(tmp_path, n_train=10, gz=True)
    path = tmp_path / "MNIST" / "raw" / (MNIST_FILES["train"][0] + ".gz")
    announced = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(gzip.compress(announced + bytes(64 << 20)))  # 64 MiB of zeros: a 64 KiB file
    assert path.stat().st_size < 1 << 20
    fails_naming(lambda: DATASETS["mnist"].preflight(MnistOptions(), tmp_path),
                 f"{path} is not a valid MNIST IDX file", "more data than its header announces")


@pytest.mark.parametrize("gz", [False, True])
def test_a_header_announcing_more_images_than_mnist_has_is_refused_before_reading_them(tmp_path, gz):
    write_tiny_mnist(tmp_path, n_test=4, gz=gz)
    path = tmp_path / "MNIST" / "raw" / (MNIST_FILES["test"][0] + (".gz" if gz else ""))
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 28, 28)  # 3 TB of pixels announced
    path.write_bytes(gzip.compress(header) if gz else header)
    fails_naming(lambda: DATASETS["mnist"].preflight(MnistOptions(split="test"), tmp_path),
                 f"{path} is not a valid MNIST IDX file", "4294967295 images, more than MNIST's 10000")


def test_the_uncompressed_mnist_file_wins_over_its_gz(tmp_path):
    plain = write_tiny_mnist(tmp_path, n_train=4, seed=1)["train"]
    raw = tmp_path / "MNIST" / "raw"
    for file in MNIST_FILES["train"]:  # a stale .gz beside the extracted file, as torchvision leaves both
        (raw / (file + ".gz")).write_bytes(gzip.compress(b"stale"))
    assert torch.equal(mnist(tmp_path).labels, torch.from_numpy(plain.labels))


# ---- SVHN -------------------------------------------------------------------------------

def svhn(root, split="train"):
    return DATASETS["svhn"].build(SvhnOptions(split=split), root)


@pytest.mark.parametrize("split", ["train", "test"])
def test_svhn_reads_back_pixels_labels_and_order(tmp_path, split):
    written = write_tiny_svhn(tmp_path, n_train=9, n_test=4, seed=2)[split]
    dataset = svhn(tmp_path, split)
    images, labels = everything(dataset)
    assert images.shape == (len(written.labels), 3, 32, 32)
    assert torch.equal(images, as_float(written.data))
    assert torch.equal(labels, torch.from_numpy(written.labels)) and torch.equal(dataset.labels, labels)


def test_svhn_rows_and_columns_are_not_swapped(tmp_path):
    write_tiny_svhn(tmp_path, n_train=2)
    stored = scipy.io.loadmat(tmp_path / "svhn" / "train_32x32.mat")["X"]
    image, _ = svhn(tmp_path).batch([1])
    row, column, channel = 3, 17, 2
    assert image[0, channel, row, column] == stored[row, column, channel, 1] / np.float32(255)


def test_svhn_label_10_is_the_digit_0(tmp_path):
    write_tiny_svhn(tmp_path, n_train=5)
    stored = scipy.io.loadmat(tmp_path / "svhn" / "train_32x32.mat")["y"].reshape(-1)
    assert stored[0] == 10
    labels = svhn(tmp_path).labels
    assert labels[0] == 0 and torch.equal(labels, torch.from_numpy(stored.astype(np.int64) % 10))


def test_svhn_missing_file_names_the_path_under_root_svhn(tmp_path):
    fails_naming(lambda: DATASETS["svhn"].preflight(SvhnOptions(split="test"), tmp_path),
                 tmp_path / "svhn" / "test_32x32.mat", "torchvision.datasets.SVHN", "ROOT/svhn", *ROOT_HINTS)


SVHN_DAMAGE = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:-100]),
    "not a .mat file": lambda path: path.write_bytes(b"<html>Not Found</html>" * 20),
    "no labels": lambda path: scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8)}),
    "channels last": lambda path: scipy.io.savemat(path, {"X": np.zeros((2, 32, 32, 3), np.uint8),
                                                          "y": np.ones((2, 1), np.uint8)}),
    "labels from 0": lambda path: scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8),
                                                          "y": np.array([[0], [1]], np.uint8)}),
    "one label for two images": lambda path: scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8),
                                                                     "y": np.ones((1, 1), np.uint8)}),
    "a struct for the pixels": lambda path: scipy.io.savemat(path, {"X": {"a": np.zeros(2)}, "y": np.ones((2, 1))}),
    "complex pixels": lambda path: scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), complex),
                                                           "y": np.ones((2, 1))}),
}


@pytest.mark.parametrize("compressed", [False, True])
def test_svhn_reads_compressed_and_plain_mat_files_with_matlabs_compact_storage(tmp_path, compressed):
    """MATLAB's own files (SVHN's were written by MATLAB) are zlib-compressed and store the double
    labels 1..10 as uint8; scipy writes neither form by default."""
    pixels = np.random.default_rng(3).integers(0, 256, size=(32, 32, 3, 3), dtype=np.uint8)
    path = tmp_path / "svhn" / "test_32x32.mat"
    path.parent.mkdir()
    scipy.io.savemat(path, {"X": pixels, "y": np.array([[10.0], [1.0], [7.0]])}, do_compression=compressed)
    images, labels = DATASETS["svhn"].build(SvhnOptions(split="test"), tmp_path).batch([0, 1, 2])
    assert torch.equal(images, torch.from_numpy(pixels.transpose(3, 2, 0, 1).copy()).float() / 255)
    assert labels.tolist() == [0, 1, 7]


def test_the_mat_file_that_crashed_scipy_is_refused_by_name(tmp_path):
    """One byte that scipy.io.loadmat 1.17 segfaulted on (found by tests/fuzzing.py): the type of
    the pixels' data element, miUINT8 (2), set to 130, which is no MAT-file type."""
    write_tiny_svhn(tmp_path, n_train=2, n_test=3)
    path = tmp_path / "svhn" / "test_32x32.mat"
    data = bytearray(path.read_bytes())
    offset = 128 + 8 + 16 + 24 + 8  # header, matrix tag, array flags, 4 dimensions, the name "X" (small element)
    assert data[offset:offset + 4] == b"\x02\x00\x00\x00"
    data[offset] = 0x82
    path.write_bytes(bytes(data))
    fails_naming(lambda: DATASETS["svhn"].preflight(SvhnOptions(split="test"), tmp_path),
                 f"{path} is not a valid SVHN .mat file", "type 130, not a numeric type")


def test_a_mat_file_announcing_more_images_than_the_split_has_is_refused_before_reading_them(tmp_path):
    write_tiny_svhn(tmp_path, n_train=2, n_test=3)
    path = tmp_path / "svhn" / "test_32x32.mat"
    data = bytearray(path.read_bytes())
    offset = 128 + 8 + 16 + 8 + 12  # header, matrix tag, array flags, dimensions' tag, the first 3 dimensions
    assert data[offset:offset + 4] == (3).to_bytes(4, "little")
    data[offset:offset + 4] = (2**31 - 1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    fails_naming(lambda: DATASETS["svhn"].preflight(SvhnOptions(split="test"), tmp_path),
                 f"{path} is not a valid SVHN .mat file", "2147483647 images announced, more than the split's 26032")


@pytest.mark.parametrize("damage", SVHN_DAMAGE)
def test_a_damaged_svhn_file_is_named(tmp_path, damage):
    write_tiny_svhn(tmp_path, n_train=3)
    path = tmp_path / "svhn" / "train_32x32.mat"
    SVHN_DAMAGE[damage](path)
    for check in (DATASETS["svhn"].preflight, DATASETS["svhn"].build):
        fails_naming(lambda: check(SvhnOptions(), tmp_path), f"{path} is not a valid SVHN .mat file")


# ---- image folders ----------------------------------------------------------------------

def folder(root, path="ham", **options):
    return DATASETS["imagefolder"].build(ImageFolderOptions(path=path, **options), root)


def folder_preflight(root, path="ham", **options):
    return DATASETS["imagefolder"].preflight(ImageFolderOptions(path=path, **options), root)


def test_image_folder_reads_back_pixels_with_sorted_classes_and_files(tmp_path):
    written = write_image_folder(tmp_path / "ham", classes=("zebra", "ant", "moth"), per_class=2, size=8)
    dataset = folder(tmp_path, resolution=8, test_fraction=0.0)
    expected = [(name, pixels) for name in sorted(written) for _, pixels in written[name]]
    images, labels = everything(dataset)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]  # ant, moth, zebra
    assert torch.equal(dataset.labels, labels)
    assert torch.equal(images, torch.stack([hwc(pixels) for _, pixels in expected]))
    assert dataset.info.num_classes == 3 and dataset.info.channels == 3 and dataset.info.resolution == 8


def test_image_folder_test_split_is_the_last_files_of_each_class(tmp_path):
    written = write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=5)
    train, test = folder(tmp_path, split="train"), folder(tmp_path, split="test")
    assert [p.name for p in test.files] == ["img_004.png", "img_004.png"]  # round(5 × 0.2) = 1 per class
    assert test.labels.tolist() == [0, 1] and train.labels.tolist() == [0] * 4 + [1] * 4
    assert set(train.files).isdisjoint(test.files)
    assert set(train.files) | set(test.files) == {file for files in written.values() for file, _ in files}


def test_image_folder_test_fraction_rounds_per_class(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=3)
    assert len(folder(tmp_path, split="test", test_fraction=0.5)) == 4  # round half up: 2 of 3 per class
    assert len(folder(tmp_path, split="train", test_fraction=0.5)) == 2


def test_image_folder_keeps_only_image_extensions_and_skips_hidden_entries(tmp_path):
    root = tmp_path / "ham"
    write_image_folder(root, classes=("a", "b"), per_class=1, ext=".PNG")
    write_image_folder(root, classes=("a",), per_class=1, ext=".jpeg")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / ".thumbnail.png").write_bytes(b"hidden")
    (root / ".ipynb_checkpoints").mkdir()  # not a class
    shutil.copy(root / "a" / "img_000.PNG", root / "b" / "img_001.Tiff")
    dataset = folder(tmp_path, test_fraction=0.0)
    assert [f.relative_to(root).as_posix() for f in dataset.files] == [
        "a/img_000.PNG", "a/img_000.jpeg", "b/img_000.PNG", "b/img_001.Tiff"]
    assert dataset.info.num_classes == 2


def test_image_folder_follows_symlinked_folders_but_not_loops(tmp_path):
    root = tmp_path / "ham"
    write_image_folder(root, classes=("a", "b"), per_class=1)
    outside = tmp_path / "more"
    write_image_folder(outside, classes=("extra",), per_class=2)
    (root / "a" / "linked").symlink_to(outside / "extra", target_is_directory=True)  # followed once
    for folder_ in (root / "a", root / "b"):
        (folder_ / "up").symlink_to(root, target_is_directory=True)  # a loop through the top
        (folder_ / "self").symlink_to(folder_, target_is_directory=True)  # a loop onto itself
    dataset = folder(tmp_path, test_fraction=0.0)
    assert [f.relative_to(root).as_posix() for f in dataset.files] == [
        "a/img_000.png", "a/linked/img_000.png", "a/linked/img_001.png", "b/img_000.png"]


def test_image_folder_resizes_the_short_side_then_crops_the_centre(tmp_path):
    written = write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=1, size=(24, 8))
    image, _ = folder(tmp_path, resolution=8, test_fraction=0.0).batch([0])
    pixels = written["a"][0][1]
    assert torch.equal(image[0], hwc(pixels[:, 8:16]))  # short side already 8: only the centre crop

    shrunk, _ = folder(tmp_path, resolution=4, test_fraction=0.0).batch([0])
    reference = Image.fromarray(pixels).resize((12, 4), Image.Resampling.BILINEAR).crop((4, 0, 8, 4))
    assert torch.equal(shrunk[0], hwc(np.asarray(reference)))


def test_image_folder_decodes_grayscale_as_rgb(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=1)
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(gray, mode="L").save(tmp_path / "ham" / "a" / "img_000.png")
    image, _ = folder(tmp_path, resolution=8, test_fraction=0.0).batch([0])
    assert torch.equal(image[0], as_float(np.stack([gray] * 3)))


def test_image_folder_reads_only_the_files_a_batch_asks_for(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=2)
    dataset = folder(tmp_path, test_fraction=0.0)
    gone, damaged = dataset.files[1], dataset.files[2]
    gone.unlink()
    damaged.write_bytes(b"not a png")
    images, labels = dataset.batch([3, 0])
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [1, 0]
    fails_naming(lambda: dataset.batch([0, 1]), gone)
    fails_naming(lambda: dataset.batch([2]), damaged, "cannot be read as an image")


def test_image_folder_accepts_an_absolute_path_without_a_data_root(tmp_path):
    write_image_folder(tmp_path / "lung", classes=("aca", "n", "scc"), per_class=2)
    options = ImageFolderOptions(path=str(tmp_path / "lung"))
    DATASETS["imagefolder"].preflight(options, None)
    assert DATASETS["imagefolder"].build(options, None).info.num_classes == 3


def test_image_folder_without_a_path_asks_for_one(tmp_path):
    fails_naming(lambda: folder_preflight(tmp_path, path=""), "needs the option `path`", 'name = "imagefolder"')


def test_image_folder_relative_path_without_a_root_explains_the_root():
    fails_naming(lambda: folder_preflight(None), "'imagefolder'", "ham/", *ROOT_HINTS)


def test_image_folder_missing_folder_is_named_with_where_the_root_came_from(tmp_path):
    message = fails_naming(lambda: folder_preflight(tmp_path, path="derm/ham"),
                           f"missing folder {tmp_path / 'derm' / 'ham'}", *ROOT_HINTS)
    assert "one subfolder per class" in message


def test_image_folder_needs_two_classes(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("only",), per_class=2)
    fails_naming(lambda: folder_preflight(tmp_path), str(tmp_path / "ham"), "at least 2")


def test_image_folder_names_a_class_without_images(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=1)
    (tmp_path / "ham" / "empty").mkdir()
    (tmp_path / "ham" / "empty" / "readme.txt").write_text("x")
    for check in (folder_preflight, folder):
        fails_naming(lambda: check(tmp_path), tmp_path / "ham" / "empty", "without images")


def test_image_folder_preflight_opens_the_first_image_of_each_class(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=2)
    pointer = tmp_path / "ham" / "b" / "img_000.png"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    fails_naming(lambda: folder_preflight(tmp_path), pointer, "Git LFS")


def test_an_empty_split_is_refused(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=2)
    fails_naming(lambda: folder_preflight(tmp_path, split="test", test_fraction=0.0), "test split", "empty")


# ---- ImageNet ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_tiny_imagenet_val(root, per_class=2)
    return root


def imagenet(root, **options):
    return DATASETS["imagenet"].build(ImageNetOptions(**options), root)


def test_imagenet_has_1000_classes_in_sorted_wnid_order(imagenet_root):
    dataset = imagenet(imagenet_root, resolution=16, test_fraction=0.0)
    wnids = imagenet_wnids()
    assert len(dataset) == 2000 and dataset.info.num_classes == 1000
    assert [f.parent.name for f in dataset.files] == [w for w in wnids for _ in range(2)]
    assert torch.equal(dataset.labels, torch.arange(1000).repeat_interleave(2))
    images, labels = dataset.batch([0, 1999])
    assert images.shape == (2, 3, 16, 16) and labels.tolist() == [0, 999]


def test_imagenet_resizes_to_256_over_224_then_crops(imagenet_root):
    dataset = imagenet(imagenet_root, resolution=14, test_fraction=0.0)
    file = dataset.files[5]
    with Image.open(file) as opened:  # 8x8 -> short side round(14 * 256/224) = 16, crop 14 at (1, 1)
        reference = opened.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR).crop((1, 1, 15, 15))
    assert torch.equal(dataset.batch([5])[0][0], hwc(np.asarray(reference)))
    assert DATASETS["imagenet"].describe(ImageNetOptions(), None).resolution == 224


def test_imagenet_splits_carve_the_validation_set(imagenet_root):
    train = imagenet(imagenet_root, split="train", test_fraction=0.5)
    test = imagenet(imagenet_root, split="test", test_fraction=0.5)
    assert len(train) == len(test) == 1000
    assert set(train.files).isdisjoint(test.files)
    assert torch.equal(train.labels, test.labels)


def test_imagenet_needs_exactly_1000_class_folders(tmp_path):
    val = tmp_path / "imagenet" / "val"
    write_image_folder(val, classes=[f"n{index:08d}" for index in range(3)], per_class=1)
    fails_naming(lambda: DATASETS["imagenet"].preflight(ImageNetOptions(), tmp_path),
                 str(val), "3 class folders, expected 1000")


def test_imagenet_missing_folder_says_how_to_get_it(tmp_path):
    fails_naming(lambda: DATASETS["imagenet"].preflight(ImageNetOptions(), tmp_path),
                 f"missing folder {tmp_path / 'imagenet' / 'val'}", "image-net.org",
                 "torchvision.datasets.ImageNet", *ROOT_HINTS)
    fails_naming(lambda: DATASETS["imagenet"].preflight(ImageNetOptions(), None), "imagenet/val/", *ROOT_HINTS)


# ---- describe ---------------------------------------------------------------------------

def write_everything(root):
    write_tiny_mnist(root)
    write_tiny_svhn(root)
    write_tiny_cifar10(root)
    write_image_folder(root / "ham", classes=("a", "b", "c"), per_class=2)


DESCRIBED = {
    "digits": DigitsOptions(resolution=16),
    "photos": PhotoOptions(resolution=16),
    "mnist": MnistOptions(),
    "svhn": SvhnOptions(split="test"),
    "cifar10": CifarOptions(),
    "imagefolder": ImageFolderOptions(path="ham", resolution=12),
}


@pytest.mark.parametrize("name", DESCRIBED)
def test_describe_agrees_with_the_built_dataset(tmp_path, name):
    write_everything(tmp_path)
    entry = DATASETS[name]
    assert entry.describe(DESCRIBED[name], tmp_path) == entry.build(DESCRIBED[name], tmp_path).info


def test_describe_agrees_with_the_built_imagenet(imagenet_root):
    options = ImageNetOptions(resolution=8)
    assert DATASETS["imagenet"].describe(options, imagenet_root) == imagenet(imagenet_root, resolution=8).info


@pytest.mark.parametrize("name", ["mnist", "svhn", "cifar10", "cifar100", "imagenet"])
def test_describe_reads_no_file(tmp_path, name):
    info = DATASETS[name].describe(DATASETS[name].options(), tmp_path / "nothing here")
    assert info.name == name and info.num_classes in (10, 100, 1000)
    assert len(info.normalization.mean) == len(info.normalization.std) == info.channels


def test_every_dataset_has_a_split_option_and_a_describe():
    for name in DATASETS:
        entry = DATASETS[name]
        assert entry.options().split == "train" and entry.describe is not None


# ---- resolution as a factor -------------------------------------------------------------

def test_at_resolution_resizes_batches_and_keeps_labels(tmp_path):
    write_tiny_mnist(tmp_path, n_train=6)
    dataset = mnist(tmp_path)
    resized = at_resolution(dataset, 64)
    images, labels = resized.batch([4, 1])
    original, original_labels = dataset.batch([4, 1])
    expected = F.interpolate(original, size=(64, 64), mode="bilinear", antialias=True).clamp(0, 1)
    assert images.shape == (2, 1, 64, 64) and torch.allclose(images, expected)
    assert 0 <= images.min() and images.max() <= 1
    assert torch.equal(labels, original_labels) and torch.equal(resized.labels, dataset.labels)
    assert len(resized) == len(dataset)
    assert resized.info.resolution == 64 and resized.info.normalization == dataset.info.normalization
    assert at_resolution(dataset, 14).batch([0])[0].shape == (1, 1, 14, 14)


def test_at_the_native_resolution_the_dataset_is_returned_itself(tmp_path):
    write_tiny_mnist(tmp_path)
    dataset = mnist(tmp_path)
    assert at_resolution(dataset, 28) is dataset and at_resolution(dataset, 0) is dataset
    with pytest.raises(ValueError):
        at_resolution(dataset, -1)


def test_image_folders_are_decoded_again_at_a_new_resolution(tmp_path):
    write_image_folder(tmp_path / "ham", classes=("a", "b"), per_class=2, size=40)
    resized = at_resolution(folder(tmp_path, resolution=8), 24)
    direct = folder(tmp_path, resolution=24)
    assert resized.info == direct.info
    assert torch.equal(resized.batch([0, 3])[0], direct.batch([0, 3])[0])


# ---- through the grid loader ------------------------------------------------------------

GRID = """
name = "datasets"
metrics = ["psnr", "label_acc"]
[factors]
dataset = [{dataset}]
model = ["lenet"]
attack = [{{ name = "idlg", iterations = 2 }}]
batch_size = [2]
seed = [0]
[data]
root = "datasets"
{extra}
"""

WRITERS = {
    "mnist": lambda root: write_tiny_mnist(root, n_train=4, n_test=3, gz=True),
    "svhn": lambda root: write_tiny_svhn(root, n_train=4, n_test=3),
    "imagefolder": lambda root: write_image_folder(root / "ham", classes=("akiec", "bcc", "nv"), per_class=3),
    "imagenet": lambda root: write_tiny_imagenet_val(root, per_class=1),
}
FACTOR = {
    "mnist": '{ name = "mnist", split = "test" }',
    "svhn": '"svhn"',
    "imagefolder": '{ name = "imagefolder", path = "ham" }',
    "imagenet": '{ name = "imagenet", resolution = 32 }',
}


def grid_file(tmp_path, dataset, extra=""):
    path = tmp_path / "grid.toml"
    path.write_text(textwrap.dedent(GRID.format(dataset=dataset, extra=extra)))
    return path


@pytest.mark.parametrize("name", FACTOR)
def test_each_dataset_loads_through_the_grid_file(tmp_path, name):
    WRITERS[name](tmp_path / "datasets")
    grid = load_grid(grid_file(tmp_path, FACTOR[name]))
    (choice,) = {cell.dataset for cell in grid.cells}
    assert choice.name == name and grid.data_root == (tmp_path / "datasets").resolve()
    entry = DATASETS[name]
    entry.preflight(choice.options, grid.data_root)
    dataset = entry.build(choice.options, grid.data_root)
    images, labels = dataset.batch([0, 1])
    assert images.shape[:2] == (2, dataset.info.channels) and images.shape[-1] == dataset.info.resolution
    assert entry.describe(choice.options, grid.data_root) == dataset.info


def test_image_folder_path_can_be_set_in_the_datasets_table(tmp_path):
    WRITERS["imagefolder"](tmp_path / "datasets")
    overrides = '[datasets.imagefolder]\npath = "ham"\nresolution = 16'
    grid = load_grid(grid_file(tmp_path, '"imagefolder"', extra=overrides))
    (cell, *_) = grid.cells
    assert cell.dataset.options == ImageFolderOptions(path="ham", resolution=16)
    assert len(DATASETS["imagefolder"].build(cell.dataset.options, grid.data_root)) == 9 - 3


def test_image_folder_grid_without_the_folder_fails_plan_naming_it(tmp_path, cli):
    result = cli("plan", grid_file(tmp_path, FACTOR["imagefolder"]), "--check")
    assert result.exit_code == 2 and str(tmp_path / "datasets" / "ham") in result.output


# ---- digits -----------------------------------------------------------------------------

def test_digits_are_scikit_learns_images_and_labels():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    train = DATASETS["digits"].build(DigitsOptions(resolution=8), None)
    test = DATASETS["digits"].build(DigitsOptions(resolution=8, split="test"), None)
    images = torch.cat([train.batch(list(range(len(train))))[0], test.batch(list(range(len(test))))[0]])
    assert torch.equal(images, torch.from_numpy(bunch.images / 16.0).float().unsqueeze(1))
    assert torch.equal(torch.cat([train.labels, test.labels]), torch.from_numpy(bunch.target))


def test_digits_are_read_without_importing_scikit_learn():
    code = ("import sys; from evalgrid.catalogue import DATASETS; from evalgrid.data.digits import DigitsOptions; "
            "DATASETS['digits'].build(DigitsOptions(), None); print('sklearn' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---- photos -----------------------------------------------------------------------------

def test_photos_are_windows_of_scikit_learns_sample_photographs():
    from sklearn.datasets import load_sample_images

    china, flower = (torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p in load_sample_images().images)
    assert china.shape == flower.shape == (3, 427, 640)
    train = DATASETS["photos"].build(PhotoOptions(resolution=32, window=96), None)
    test = DATASETS["photos"].build(PhotoOptions(resolution=32, window=96, split="test"), None)
    # windows of 96 at stride 48: 7 rows x 12 columns per photo, 168 in all; every fifth is test
    assert (len(train), len(test)) == (135, 33)
    first, label = train.batch([0])
    expected = torch.nn.functional.interpolate(china[None, :, :96, :96], size=32, mode="bilinear", antialias=True,
                                               align_corners=False).clamp(0, 1)
    assert torch.allclose(first, expected, atol=1e-6)
    assert label.tolist() == [0]  # china, centre at x = 48: the first fifth
    last, last_label = test.batch([len(test) - 1])  # window 167 (167 % 5 == 2: train) ... the last test one is 164
    column = 164 - 84 - 6 * 12  # flower's window 80: row 6, column 8 -> left 384, centre 432
    assert column == 8 and last_label.tolist() == [5 + 432 * 5 // 640]
    expected_last = torch.nn.functional.interpolate(flower[None, :, 288:384, 384:480], size=32, mode="bilinear",
                                                    antialias=True, align_corners=False).clamp(0, 1)
    assert torch.allclose(last, expected_last, atol=1e-6)
    info = DATASETS["photos"].describe(PhotoOptions(), None)
    assert (info.channels, info.num_classes, info.resolution) == (3, 10, 32)


# ---- the split sizes plan checks batches against -----------------------------------------

def test_each_file_backed_preflight_returns_the_number_of_images_its_split_holds(tmp_path):
    """Plan compares batch sizes with these counts after one read of each split; the counts
    are those the test wrote (7/3 MNIST, 9/4 SVHN, and an image folder of 3 classes x 4 files
    with test_fraction 0.25: 3 x 3 train, 3 x 1 test). CIFAR's: tests/test_cifar.py."""
    write_tiny_mnist(tmp_path, n_train=7, n_test=3)
    write_tiny_svhn(tmp_path, n_train=9, n_test=4)
    write_image_folder(tmp_path / "ham", classes=("a", "b", "c"), per_class=4)
    expected = {("mnist", MnistOptions, 7, 3), ("svhn", SvhnOptions, 9, 4)}
    for name, options, train, test in expected:
        assert DATASETS[name].preflight(options(split="train"), tmp_path) == train, name
        assert DATASETS[name].preflight(options(split="test"), tmp_path) == test, name
    assert folder_preflight(tmp_path, split="train", test_fraction=0.25) == 9
    assert folder_preflight(tmp_path, split="test", test_fraction=0.25) == 3
