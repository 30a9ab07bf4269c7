"""Every paper grid (grids/sok and grids/fedleak, smoke companions included) is listed by plain
`evalgrid plan`, and passes what `plan --check` checks, on a machine without the papers' data or
weights.

`plan --check` runs `preflight.check_ready`, which reports the files missing here (the datasets'
files, torchvision's ImageNet checkpoints, the LPIPS weights) apart from what is wrong
(`preflight.find_problems`): a paper grid may lack its files on a test machine, but nothing else.
The checks that count a dataset's images are off (the fake image folders below are far smaller
than the real ones). What is left is what a grid file can get wrong by itself: every model builds for its data (on the
meta device), every gradient source names real parameters, every metric fits the images (LPIPS
needs 31x31, so it cannot measure MNIST's 28x28). Lung-Colon, HAM10000 and the folders of SoK
Figs. 5-6 are image folders whose classes are read from disk: tiny fake copies stand in
(tests/fakedata.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

import evalgrid.grid
import fakedata
from evalgrid.cli import main
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
def without_local_files(monkeypatch, data_root, tmp_path):
    """A data root with the fake image folders only, an empty torch cache, and no counting of images."""
    monkeypatch.setenv("EVALGRID_DATA", str(data_root))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(preflight, "_check_datasets", lambda grid, cells, findings: None)


def test_there_are_paper_grids_to_check():
    assert len(PAPER_GRIDS) >= 30, [str(path) for path in PAPER_GRIDS]


@pytest.mark.parametrize("path", PAPER_GRIDS, ids=lambda path: str(path.relative_to(GRIDS)))
def test_the_paper_grid_is_planned_without_its_files_and_nothing_else_is_wrong(path, without_local_files,
                                                                              monkeypatch):
    """Plain `plan` lists every cell without the papers' files; the checks of `plan --check`, made
    on the grid that `plan` read (one expansion per file: some take seconds), find them missing
    and nothing wrong."""
    read = []
    monkeypatch.setattr(evalgrid.grid, "load_grid", lambda *args: read.append(load_grid(*args)) or read[-1])
    result = CliRunner().invoke(main, ["plan", str(path), "--format", "csv"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows, f"{path} expands to no cell"
    assert result.stderr.splitlines()[-1] == f"{len(rows)} cells"
    assert [row["cell_id"] for row in rows] == [cell.cell_id for cell in read[0].cells]
    findings = preflight.find_problems(read[0])
    assert not findings.wrong, findings.report()


def test_the_plan_time_checks_refuse_lpips_on_mnist(without_local_files, write_grid):
    """The check the paper grids must pass is live: FedLeak Table 3's grid with LPIPS put back fails."""
    from evalgrid.errors import UserError

    table3 = GRIDS / "fedleak" / "table3_benchmarks.toml"
    grid_file = write_grid(f'extends = "{table3}"\nname = "lpips-on-mnist"\n'
                           'metrics = ["psnr", "lpips"]\n\n[factors]\ndataset = ["mnist"]\n')
    with pytest.raises(UserError, match="'lpips' needs images of at least 31x31"):
        preflight.check_ready(load_grid(grid_file))
