"""Shared test helpers: write grid files, invoke the real CLI."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import helper modules such as fakedata

MINIMAL_GRID = """
name = "tiny"
metrics = ["psnr", "ssim", "label_acc"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["idlg", { name = "ig", tv = 0.0 }]
batch_size = [1]
labels = ["known", "inferred"]
seed = [0]

[attacks.idlg]
iterations = 3

[attacks.ig]
iterations = 3
"""


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests' tensors are tiny: on a 2-core machine torch's second thread mostly waits for the
    first (several times slower overall). Runs in subprocesses set their own threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_grid(tmp_path: Path):
    """write_grid(text, name="grid.toml") -> path of a grid file in a temporary folder."""
    def write(text: str, name: str = "grid.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli():
    """cli(*args) -> click Result of the real `evalgrid` command, run in-process."""
    from evalgrid.cli import main

    def invoke(*args: str):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache: $TORCH_HOME points at it and torch.hub.set_dir is undone (the
    variable it sets, restored after the test)."""
    import torch

    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home
