"""Dispatch to Slurm, measured on the single-node cluster of slurm/cluster/ (started if needed).

Prints:
  1. the wall time of `evalgrid run --executor slurm` for a 2,000-cell grid (one cell per task,
     and 10 per task), then of `evalgrid cancel` on it — median of REPEATS runs;
  2. the sacct calls per status refresh of that directory, and the refresh's time;
  3. the overhead per cell: a task's elapsed time (sacct) minus the wall time its cells report,
     for 16 tiny cells run one per task and 16 to one task.

    python benchmarks/slurm_dispatch.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, markdown_table, section  # noqa: E402

GRID = """
name = "{name}"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["idlg"]
batch_size = {batch_sizes}
seed = {seeds}

[attacks.idlg]
iterations = 2

[slurm]
profile = "local-test"
cells_per_job = {per_task}
"""


def evalgrid(*args: str, env=None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "evalgrid", *args], capture_output=True, text=True, env=env)
    if done.returncode not in (0, 1):
        raise SystemExit(f"evalgrid {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - started, done


def write_grid(folder: Path, name: str, cells: int, per_task: int) -> Path:
    batch_sizes = [1, 2, 4, 8] if cells >= 4 else [1]
    seeds = list(range(cells // len(batch_sizes)))
    path = folder / f"{name}.toml"
    path.write_text(GRID.format(name=name, batch_sizes=batch_sizes, seeds=seeds, per_task=per_task))
    return path


def submission_times(folder: Path, per_task: int, repeats: int) -> tuple[list[float], list[float]]:
    submits, cancels = [], []
    grid = write_grid(folder, f"submit{per_task}", 2000, per_task)
    for repeat in range(repeats):
        out = folder / f"submit{per_task}-{repeat}"
        seconds, _ = evalgrid("run", str(grid), "--out", str(out), "--executor", "slurm")
        submits.append(seconds)
        seconds, _ = evalgrid("cancel", str(out))
        cancels.append(seconds)
    return submits, cancels


def refresh(out: Path, repeats: int) -> tuple[int, float]:
    from evalgrid.grid import load_grid
    from evalgrid.executors.slurm.accounting import Accounting
    from evalgrid.executors.slurm.cells import cell_states
    from evalgrid.store.layout import OutputDir

    ids = [cell.cell_id for cell in load_grid(out / "grid.toml").cells]
    times, calls = [], []
    for _ in range(repeats):
        before = Accounting.calls
        started = time.perf_counter()
        cell_states(OutputDir(out), ids, fresh=True)
        times.append(time.perf_counter() - started)
        calls.append(Accounting.calls - before)
    return max(calls), statistics.median(times)


def overhead(folder: Path, per_task: int) -> tuple[float, float]:
    """(seconds of overhead per cell, wall seconds until every cell ended) for 16 tiny cells."""
    import evalgrid as eg
    from evalgrid.executors.slurm.ledger import read_submissions
    from evalgrid.store.layout import OutputDir

    out = folder / f"pack{per_task}"
    grid = write_grid(folder, f"pack{per_task}", 16, per_task)
    env = {**os.environ, "EVALGRID_SACCT_INTERVAL_S": "1"}
    wall, _ = evalgrid("run", str(grid), "--out", str(out), "--executor", "slurm", "--wait", env=env)
    frame = eg.load(out).set_index("cell_id")
    tasks = [t for s in read_submissions(OutputDir(out)) for j in s.jobs for t in j.tasks]
    elapsed = _elapsed({t.job_id.split("_")[0] for t in tasks})
    spent = sum(elapsed[t.job_id] - frame.loc[list(t.items), "wall_s"].sum() for t in tasks)
    return spent / len(frame), wall


def _elapsed(job_ids: set[str]) -> dict[str, float]:
    shown = subprocess.run(["sacct", "-X", "-n", "-P", "--format=JobID,ElapsedRaw", "-j", ",".join(sorted(job_ids))],
                           capture_output=True, text=True, check=True).stdout
    return {line.split("|")[0]: float(line.split("|")[1]) for line in shown.splitlines() if "|" in line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = subprocess.run(["bash", str(REPO / "slurm" / "cluster" / "start.sh")], capture_output=True, text=True)
    if started.returncode != 0:
        raise SystemExit(f"no Slurm cluster: {started.stderr.strip()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="evalgrid-bench-") as tmp:
        folder = Path(tmp)
        for per_task in (1, 10):
            submits, cancels = submission_times(folder, per_task, args.repeats)
            rows.append([f"`evalgrid run --executor slurm`, 2,000 cells, {per_task} per task "
                         f"({2000 // per_task} tasks)", f"median {statistics.median(submits):.2f} s "
                         f"({min(submits):.2f}–{max(submits):.2f})"])
            rows.append([f"`evalgrid cancel` of those ({per_task} per task)", f"median {statistics.median(cancels):.2f} s"])
            print(" | ".join(rows[-2]), file=sys.stderr, flush=True)
        calls, seconds = refresh(folder / "submit1-0", args.repeats)
        rows.append(["a status refresh of 2,000 cells", f"{calls} sacct call(s), median {seconds * 1000:.0f} ms"])
        for per_task in (1, 16):
            spent, wall = overhead(folder, per_task)
            rows.append([f"overhead per cell, 16 tiny cells, {per_task} per task (task elapsed − the cells' own "
                         f"wall time)", f"{spent:.2f} s (submit to last result {wall:.1f} s)"])
    slurm = subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.strip()
    body = markdown_table(["what", "figure"], rows) + (
        f"\n\nOn the single-node cluster of slurm/cluster/ ({slurm}), {args.repeats} repeats.")
    print(section("slurm_dispatch.py: dispatch to Slurm", f"python benchmarks/slurm_dispatch.py --repeats {args.repeats}",
                  body))

if __name__ == "__main__":
    main()
