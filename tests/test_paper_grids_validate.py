"""Every paper grid (grids/sok and grids/fedleak, smoke companions included) passes what
`evalgrid plan` checks before it lists a cell, on a machine without the papers' data or weights.

`evalgrid plan` runs `preflight.check_ready`. Three of its checks ask only whether local files
exist (the datasets' files, torchvision's ImageNet checkpoints, the LPIPS weights): a test
machine has none, so they are stubbed here and nothing else is. What is left is what a grid file
can get wrong by itself: every model builds for its data (on the meta device), every gradient
source names real parameters, every metric fits the images (LPIPS needs 31x31, so it cannot
measure MNIST's 28x28). Lung-Colon, HAM10000 and the folders of SoK Figs. 5-6 are image folders
whose classes are read from disk: tiny fake copies stand in (tests/fakedata.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import fakedata
from evalgrid.launch import preflight
from evalgrid.grid import load_grid

pytestmark = pytest.mark.slow  # the paper grids expand to up to 1,890 cells each: seconds per file

GRIDS = Path(__file__).resolve().parents[1] / "grids"
PAPER_GRIDS = sorted((GRIDS / "sok").rglob("*.toml")) + sorted((GRIDS / "fedleak").rglob("*.toml"))
LUNG_COLON_CLASSES = ("colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc")  # grids/fedleak/lung_colon.toml
HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")  # FedLeak Table 4's skin lesions
# The folders of SoK Figs. 5 and 6 (images with semantic details; the OOD sets): any classes will do.
OTHER_FOLDERS = ("semantic_details", "places", "textures", "objects", "styles")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    fakedata.write_image_folder(root / "lung_colon", classes=LUNG_COLON_CLASSES, per_class=5, size=8)
    fakedata.write_image_folder(root / "ham10000", classes=HAM10000_CLASSES, per_class=5, size=8)
    for folder in OTHER_FOLDERS:
        fakedata.write_image_folder(root / folder, classes=("a", "b"), per_class=5, size=8)
    return root


@pytest.fixture
def without_local_files(monkeypatch, data_root):
    """`check_ready` with the checks that only look for local files turned off."""
    monkeypatch.setenv("EVALGRID_DATA", str(data_root))
    monkeypatch.setattr(preflight, "_check_datasets", lambda grid, cells: None)
    monkeypatch.setattr(preflight, "_check_init", lambda grid, init, model, network: None)
    monkeypatch.setattr("evalgrid.models.weights.require_weights", lambda names: None)


def test_there_are_paper_grids_to_check():
    assert len(PAPER_GRIDS) >= 30, [str(path) for path in PAPER_GRIDS]


@pytest.mark.parametrize("path", PAPER_GRIDS, ids=lambda path: str(path.relative_to(GRIDS)))
def test_the_paper_grid_passes_the_plan_time_checks(path, without_local_files):
    grid = load_grid(path)
    assert grid.cells, f"{path} expands to no cell"
    preflight.check_ready(grid)


def test_the_plan_time_checks_refuse_lpips_on_mnist(without_local_files, write_grid):
    """The check the paper grids must pass is live: FedLeak Table 3's grid with LPIPS put back fails."""
    from evalgrid.errors import UserError

    table3 = GRIDS / "fedleak" / "table3_benchmarks.toml"
    grid_file = write_grid(f'extends = "{table3}"\nname = "lpips-on-mnist"\n'
                           'metrics = ["psnr", "lpips"]\n\n[factors]\ndataset = ["mnist"]\n')
    with pytest.raises(UserError, match="'lpips' needs images of at least 31x31"):
        preflight.check_ready(load_grid(grid_file))
