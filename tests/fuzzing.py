"""A seeded mutation fuzzer for the files evalgrid reads from users: CIFAR batches, MNIST IDX
files (plain and gzipped), SVHN .mat files and torch checkpoints. Each case writes a valid tiny
file, damages it (bit flips, random overwrites, truncation, insertion, duplicated chunks, length
fields set to 0 or 0xFF...) and runs evalgrid's reader on it. A case passes when the reader
either accepts the file or raises a UserError that names the file; anything else (another
exception, a crash) is a failure. ``python fuzzing.py CASES SEED`` prints one line per format,
``format cases accepted refused``, and the failures; it exits 1 when there is one. The test runs
it in a subprocess, so that a crash fails the test instead of killing pytest."""

from __future__ import annotations

import random
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from evalgrid.catalogue import DATASETS
from evalgrid.data.cifar import CifarOptions
from evalgrid.data.digits import DigitsOptions
from evalgrid.data.mnist import MnistOptions
from evalgrid.data.svhn import SvhnOptions
from evalgrid.errors import UserError
from evalgrid.catalogue import MODELS
from evalgrid.models.convnet import ConvNetOptions
from evalgrid.models.init import fitting_state
from fakedata import MNIST_FILES, write_tiny_cifar10, write_tiny_mnist, write_tiny_svhn


def mutate(content: bytes, rng: random.Random) -> bytes:
    """``content`` with one to three random damages."""
    data = bytearray(content)
    for _ in range(rng.randint(1, 3)):
        position = rng.randrange(max(1, len(data)))
        kind = rng.randrange(7)
        if kind == 0:  # flip a few bits
            for _ in range(rng.randint(1, 8)):
                index = rng.randrange(max(1, len(data)))
                if data:
                    data[index] ^= 1 << rng.randrange(8)
        elif kind == 1:  # overwrite a run with random bytes
            length = rng.randint(1, 64)
            data[position:position + length] = rng.randbytes(length)
        elif kind == 2:  # truncate
            del data[position:]
        elif kind == 3:  # insert random bytes
            data[position:position] = rng.randbytes(rng.randint(1, 64))
        elif kind == 4:  # duplicate a chunk in place
            length = rng.randint(1, 256)
            data[position:position] = data[position:position + length]
        elif kind == 5:  # a length or count field set to an extreme
            data[position:position + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
        else:  # drop a chunk
            del data[position:position + rng.randint(1, 256)]
    return bytes(data)


class Format:
    """One kind of file: how to write a valid one under ``root`` (returning the path to damage)
    and how evalgrid reads it."""

    def __init__(self, name: str, write: Callable[[Path], Path], read: Callable[[Path], object]):
        self.name, self.write, self.read = name, write, read


def _cifar(root: Path) -> Path:
    write_tiny_cifar10(root, n_train=5, n_test=2)
    return root / "cifar-10-batches-py" / "test_batch"


def _mnist(gz: bool) -> Callable[[Path], Path]:
    def write(root: Path) -> Path:
        write_tiny_mnist(root, n_train=2, n_test=3, gz=gz)
        return root / "MNIST" / "raw" / (MNIST_FILES["test"][0] + (".gz" if gz else ""))
    return write


def _svhn(root: Path) -> Path:
    write_tiny_svhn(root, n_train=2, n_test=3)
    return root / "svhn" / "test_32x32.mat"


CHECKPOINT_MODEL = ConvNetOptions(width=2)


def _convnet(device: str) -> torch.nn.Module:
    info = DATASETS["digits"].describe(DigitsOptions(resolution=16), None)
    with torch.device(device):
        return MODELS["convnet"].build(CHECKPOINT_MODEL, info)


def _checkpoint(root: Path) -> Path:
    path = root / "model.pt"
    torch.save(_convnet("cpu").state_dict(), path)
    return path


FORMATS = [
    Format("cifar10", _cifar, lambda root: DATASETS["cifar10"].preflight(CifarOptions(split="test"), root)),
    Format("mnist", _mnist(False), lambda root: DATASETS["mnist"].preflight(MnistOptions(split="test"), root)),
    Format("mnist.gz", _mnist(True), lambda root: DATASETS["mnist"].preflight(MnistOptions(split="test"), root)),
    Format("svhn", _svhn, lambda root: DATASETS["svhn"].preflight(SvhnOptions(split="test"), root)),
    Format("checkpoint", _checkpoint, lambda root: fitting_state(root / "model.pt", _convnet("meta"), "convnet")),
]


def run(cases: int, seed: int) -> list[str]:
    """Fuzz every format ``cases`` times; print the counts, return the failures."""
    failures = []
    for index, fmt in enumerate(FORMATS):
        rng = random.Random(seed * 1000 + index)
        accepted = refused = 0
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            path = fmt.write(root)
            valid = path.read_bytes()
            for case in range(cases):
                path.write_bytes(mutate(valid, rng))
                try:
                    fmt.read(root)
                    accepted += 1
                except UserError as error:
                    if str(path) not in str(error):
                        failures.append(f"{fmt.name} case {case}: the message does not name {path}: {error}")
                    refused += 1
                except BaseException:  # noqa: BLE001 - every other outcome is the failure we look for
                    failures.append(f"{fmt.name} case {case}: {traceback.format_exc(limit=3)}")
        print(f"{fmt.name} {cases} {accepted} {refused}", flush=True)
    return failures


if __name__ == "__main__":
    torch.set_num_threads(1)
    found = run(int(sys.argv[1]), int(sys.argv[2]))
    for failure in found[:20]:
        print("FAILURE", failure)
    sys.exit(1 if found else 0)
