"""Chaos: an output directory survives kill -9s, damaged and stray files, a second run and a
full disk, and ends with every cell once and the numbers of an uninterrupted run.

    python benchmarks/chaos.py [--kills 10] [--cells 48] [--seed 0] [--executor local] [--workdir DIR] [--no-tmpfs]

What it does, on a grid of tiny DLG cells (LeNet, 16x16 digits, 2 L-BFGS steps):
1. a reference: the grid run once, uninterrupted, into its own DIR;
2. up to ``--kills`` kill -9s of the whole ``evalgrid run`` process group (launcher and
   workers) at random moments (within half an uninterrupted run's time: a run that ends first
   is not counted), each followed by a resume, then a last run to finish;
3. kill -9s of ``evalgrid collect`` at random moments, then a last collect;
4. damage: a truncated, a zero-byte and a garbage result file, a stray Parquet file, a copy of
   one cell's result under another's name, and temporaries of killed writes; then a run;
5. two runs started together on the same DIR (one must be refused, exit 2);
6. with root and tmpfs (skipped with ``--no-tmpfs`` or when mounting fails): a run into a small
   tmpfs that fills mid-run, then the same command after the tmpfs is enlarged.

Runs use the local executor (2 worker processes, so kills also hit workers mid-cell);
``--executor debug`` runs cells in the launcher, which the test uses to be quicker.

It prints one line per phase and a summary: kills survived, cells lost, cells duplicated,
files quarantined, cells re-run, temporaries left, and the largest difference of any cell's
PSNR from the reference (0 when resumed cells compute exactly what uninterrupted ones do). It
exits 1 if anything was lost, duplicated, left behind or different.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GRID = """name = "chaos"
metrics = ["psnr"]

[factors]
dataset = [{{ name = "digits", resolution = 16 }}]
model = ["lenet"]
attack = ["dlg"]
batch_size = [1]
seed = [{seeds}]

[attacks.dlg]
iterations = 2
lbfgs_max_iter = 2

[run]
executor = "local"
workers = 2
threads_per_worker = 1
"""


def evalgrid(*args: object) -> list[str]:
    return [sys.executable, "-m", "evalgrid", *map(str, args)]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run_to_end(*args: object, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(evalgrid(*args), capture_output=True, text=True, env=environment(), timeout=900)
    if done.returncode != expect:
        raise SystemExit(f"`evalgrid {' '.join(map(str, args))}` exited {done.returncode}, expected {expect}:\n"
                         f"{done.stderr[-3000:]}")
    return done


def killed_after(delay: float, *args: object) -> bool:
    """Start ``evalgrid ARGS`` in its own process group and kill -9 the group after ``delay``
    seconds; True when it was still running then (a real kill)."""
    process = subprocess.Popen(evalgrid(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=environment(), start_new_session=True)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def psnr_by_cell(out: Path) -> dict[str, float]:
    sys.path.insert(0, str(REPO))
    import evalgrid as api

    frame = api.load(out)
    if frame["cell_id"].duplicated().any():
        raise SystemExit(f"{out}: duplicated rows {sorted(frame.loc[frame['cell_id'].duplicated(), 'cell_id'])}")
    return dict(zip(frame["cell_id"], frame["psnr"]))


def temporaries(out: Path) -> list[Path]:
    return [path for path in out.rglob("*") if ".tmp-" in path.name]


def damage(out: Path, rng: random.Random) -> int:
    """Damage four result files, add a stray one and leave temporaries; returns how many files
    the next run must move aside (5)."""
    cells = sorted((out / "cells").glob("*.parquet"))
    truncated, empty, garbage, copied_from, copied_to = rng.sample(cells, 5)
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    empty.write_bytes(b"")
    garbage.write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    shutil.copy(copied_from, copied_to)
    shutil.copy(copied_from, out / "cells" / "stray-notes.parquet")
    for name in (".grid.toml.tmp-x1", ".results.parquet.tmp-x2", "cells/.abc.parquet.tmp-x3", "logs/.a.log.tmp-x4"):
        (out / name).write_bytes(b"half")
    return 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--cells", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-tmpfs", action="store_true")
    parser.add_argument("--executor", default="local", choices=["local", "debug"])
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="evalgrid-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    grid = work / "grid.toml"
    grid.write_text(GRID.format(seeds=", ".join(str(seed) for seed in range(args.cells))))
    summary = {"kills": 0, "kills survived": 0, "quarantined": 0, "re-run": 0}

    started = time.perf_counter()
    run_to_end("run", grid, "--out", work / "reference", "--executor", args.executor)
    reference = psnr_by_cell(work / "reference")
    full_run = time.perf_counter() - started
    print(f"reference: {len(reference)} cells in {full_run:.0f} s")

    out = work / "chaos"
    for _ in range(args.kills):
        if killed_after(rng.uniform(1.0, full_run / 2), "run", grid, "--out", out, "--executor", args.executor):
            summary["kills"] += 1
    run_to_end("run", grid, "--out", out, "--executor", args.executor)
    summary["kills survived"] = summary["kills"]
    print(f"run: {summary['kills']} kill -9s at random moments, then resumed to the end")

    collect_kills = 0
    for _ in range(max(1, args.kills // 3)):
        collect_kills += killed_after(rng.uniform(0.5, 4.0), "collect", out)
    run_to_end("collect", out)
    summary["kills"] += collect_kills
    summary["kills survived"] += collect_kills
    print(f"collect: {collect_kills} kill -9s, then collected")

    damaged = damage(out, rng)
    result = run_to_end("run", grid, "--out", out, "--executor", args.executor)
    summary["quarantined"] = result.stderr.count("note: moved ")
    summary["re-run"] = sum(1 for line in result.stderr.splitlines() if " done (" in line)
    print(f"damage: 4 result files damaged and a stray file added; {summary['quarantined']} of {damaged} moved to "
          f"quarantine, {summary['re-run']} cells run again")

    for path in sorted((out / "cells").glob("*.parquet"))[:4]:
        path.unlink()
    first, second = (subprocess.Popen(evalgrid("run", grid, "--out", out, "--executor", args.executor),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment())
                     for _ in range(2))
    codes = sorted([first.wait(timeout=900), second.wait(timeout=900)])
    refused = "another evalgrid run is using this directory" in first.stderr.read() + second.stderr.read()
    if codes not in ([0, 0], [0, 2]) or (codes == [0, 2] and not refused):
        print(f"concurrent runs exited {codes}")
        return 1
    print(f"two runs at once: exit codes {codes} ({'one refused' if codes == [0, 2] else 'one found nothing to do'})")

    if not args.no_tmpfs:
        print(full_disk(work, grid))

    final = psnr_by_cell(out)
    expected = set(reference)
    summary["cells lost"] = len(expected - set(final))
    summary["cells duplicated"] = 0  # psnr_by_cell refuses duplicated rows
    summary["temporaries left"] = len(temporaries(out))
    difference = max((abs(final[c] - reference[c]) for c in expected & set(final)), default=0.0)
    print("| kills (survived) | cells lost | duplicated | quarantined | re-run | temporaries left | max PSNR diff |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {summary['kills']} ({summary['kills survived']}) | {summary['cells lost']} | "
          f"{summary['cells duplicated']} | {summary['quarantined']} | {summary['re-run']} | "
          f"{summary['temporaries left']} | {difference:.3g} |")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    bad = summary["cells lost"] or summary["temporaries left"] or difference != 0 or summary["quarantined"] < damaged
    return 1 if bad else 0


def full_disk(work: Path, grid: Path) -> str:
    """A run into a tmpfs too small for the grid, then again after it is enlarged."""
    mount = work / "tmpfs"
    mount.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True).returncode:
        return "full disk: skipped (mounting a tmpfs needs root)"
    try:
        out = mount / "out"
        first = subprocess.run(evalgrid("run", grid, "--out", out), capture_output=True, text=True,
                               env=environment(), timeout=900)
        stopped = (first.returncode == 2 and "No space left on device" in first.stderr
                   and "Traceback" not in first.stderr)
        left = len(temporaries(out))
        subprocess.run(["mount", "-o", "remount,size=8m", str(mount)], check=True)
        run_to_end("run", grid, "--out", out)
        rows = len(psnr_by_cell(out))
        verdict = "stopped with one paragraph, exit 2" if stopped else "did NOT stop cleanly"
        return f"full disk: the first run {verdict} ({left} temporaries left); after enlarging, {rows} cells"
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
