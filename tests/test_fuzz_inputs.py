"""Damaged data files and checkpoints never crash evalgrid: tests/fuzzing.py mutates real-format
CIFAR-10, MNIST (plain and gzipped), SVHN and checkpoint files and asserts that each is either
read or refused with a UserError naming it (exit code 2 on the command line). It runs in a
subprocess, so that a segfault (as scipy.io.loadmat gave on damaged .mat files) fails the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = 600  # per format: 3,000 cases, about 8 s on 2 cores (more by hand: python tests/fuzzing.py 3000 SEED)


def test_mutated_data_files_and_checkpoints_are_read_or_refused_by_name():
    result = subprocess.run([sys.executable, "fuzzing.py", str(CASES), "0"], cwd=Path(__file__).parent,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    counts = {line.split()[0]: [int(n) for n in line.split()[1:]] for line in result.stdout.splitlines()}
    assert set(counts) == {"cifar10", "mnist", "mnist.gz", "svhn", "checkpoint"}
    for name, (cases, accepted, refused) in counts.items():
        assert cases == CASES and accepted + refused == CASES, name
        assert refused > CASES // 2, f"{name}: most mutations should break the file ({refused} refused)"
