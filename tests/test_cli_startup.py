"""The commands people run on a cluster's login node start without torch: `--help`, `status`,
`collect`, `cancel`, `table`, `components`, `plan` (validation and expansion; `plan --check`
builds models) and `retry` (each in a fresh interpreter, on a real output directory; retry's
resubmission to Slurm is checked on the real cluster in test_slurm_cluster.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

GRID = """
name = "startup"
metrics = ["psnr"]
[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["dlg"]
seed = [0, 1]
[attacks.dlg]
iterations = 1
lbfgs_max_iter = 1
"""

PROBE = """
import sys
from evalgrid.cli import main
try:
    main(sys.argv[1:])
except SystemExit as end:
    code = end.code
print("exit", code, "torch" if "torch" in sys.modules else "no-torch")
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    from click.testing import CliRunner

    from evalgrid.cli import main

    folder = tmp_path_factory.mktemp("startup")
    (folder / "grid.toml").write_text(GRID)
    result = CliRunner().invoke(main, ["run", str(folder / "grid.toml"), "--out", str(folder / "out"),
                                       "--executor", "debug"])
    assert result.exit_code == 0, result.output
    return folder / "out"


@pytest.mark.parametrize("args, code", [
    (["--help"], 0), (["status", "{out}"], 0), (["collect", "{out}"], 0), (["cancel", "{out}"], 2),
    (["table", "--list"], 0), (["run", "--help"], 0), (["status", "{out}", "--cell", "000000000000"], 2),
    (["components"], 0), (["plan", "{grid}"], 0), (["plan", "{grid}", "--out", "{out}", "--format", "json"], 0),
    (["retry", "{out}"], 0),
])
def test_the_command_imports_no_torch(ran, args, code):
    argv = [arg.format(out=ran, grid=ran.parent / "grid.toml") for arg in args]
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    last = result.stdout.strip().splitlines()[-1]
    assert last == f"exit {code} no-torch", result.stdout[-2000:] + result.stderr[-2000:]


def test_status_reads_the_ids_of_cell_ids_txt_and_expands_the_grid_when_it_is_missing_or_damaged(ran):
    from evalgrid.store.layout import OutputDir

    out = OutputDir(ran)
    listed = out.cell_ids_file.read_text()
    assert len(listed.split()) == 2 and out.cell_ids() == listed.split()
    try:
        for damage in ("empty", "a line that is no id", "missing"):
            if damage == "missing":
                out.cell_ids_file.unlink()
            else:
                out.cell_ids_file.write_text("" if damage == "empty" else "not-an-id\n" + listed)
            assert out.listed_cell_ids() is None and out.cell_ids() == listed.split(), damage
    finally:
        out.cell_ids_file.write_text(listed)
