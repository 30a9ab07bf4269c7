"""A small fixed-seed run of benchmarks/chaos.py: kill -9s during run and collect, damaged and
stray result files, two runs at once; nothing lost, nothing twice, nothing left behind, and
every cell's numbers equal to an uninterrupted run's. (The full-disk phase needs root for a
tmpfs: the benchmark runs it; tests/test_damaged_output.py simulates ENOSPC instead.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "chaos.py"


def test_the_output_directory_survives_kills_damage_and_a_second_run(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARK), "--kills", "1", "--cells", "5", "--seed", "0",
                             "--executor", "debug", "--no-tmpfs", "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "5 of 5 moved to quarantine" in result.stdout
    assert "two runs at once: exit codes" in result.stdout
    row = result.stdout.strip().splitlines()[-1].strip("|").split("|")
    kills, lost, duplicated, quarantined, rerun, left, difference = (cell.strip() for cell in row)
    assert (lost, duplicated, quarantined, left, difference) == ("0", "0", "5", "0", "0")
    assert int(rerun) >= 4  # the four damaged cells (the stray file is no cell)
