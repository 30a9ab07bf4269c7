"""Damaged grid files never crash ``evalgrid plan``: tests/grid_fuzzing.py mutates the coverage
grids (extreme numbers, values of other types, hostile strings, broken syntax, ``extends``
pointed at non-grid files) and asserts that each is planned or refused with exit code 2 and one
line naming the grid file. It runs in a subprocess, so that a crash fails the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = 300  # about 30 s on 2 cores (more by hand: python tests/grid_fuzzing.py 5000 SEED)


def test_mutated_grids_are_planned_or_refused_in_one_line_naming_the_file():
    result = subprocess.run([sys.executable, "grid_fuzzing.py", str(CASES), "0"], cwd=Path(__file__).parent,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    name, cases, accepted, refused = result.stdout.splitlines()[0].split()
    assert (name, int(cases)) == ("grids", CASES) and int(accepted) + int(refused) == CASES
    assert int(accepted) > 0, "some mutated grids should pass, reaching plan's checks"
    assert int(refused) > CASES // 2, "most mutations should break the grid"
