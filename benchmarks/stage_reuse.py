"""Stage reuse, counted: a grid of 50 cells sharing 5 stage models trains exactly 5.

    python benchmarks/stage_reuse.py [--out DIR] [--workers 2]

Writes a grid of 5 stage seeds × 5 attack settings × 2 label settings (LeNet on the shipped
digits at 16×16, a 2-round FedAvg of 2 clients, attacks of 2 iterations), runs it with
``python -m evalgrid run GRID --out DIR/out --workers 2`` (the local executor: the first two
cells, started together, need the same untrained stage) and counts what ran: the training
events that every training writes into the stage cache (``training_events``, one new file
per training, so a stage trained twice counts twice), the cached stage files and the cells
done. Then it runs a grid with one more attack setting over the same DIR: 10 new cells on
the same 5 stages, which must train none. Exits 1 unless the plan has 5 distinct stages, the
training counts are 5 and 0, and every cell is done. DIR must be new or empty (default: a new
temporary folder, kept).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import format_seconds, markdown_table, run_process, section  # noqa: E402

from evalgrid.fl.stage import stage_requests

from evalgrid.fl.stage import cached_rounds, planned_trainings  # noqa: E402
from evalgrid.fl.stage_cache import training_events  # noqa: E402
from evalgrid.grid import load_grid  # noqa: E402
from evalgrid.store.layout import OutputDir  # noqa: E402

SEEDS = [0, 1, 2, 3, 4]  # the stage's seed: one stage model per seed
ATTACKS = ['"dlg"', '"idlg"', '"ig"', '{ name = "ig", tv = 0.0 }', '{ name = "ig", tv = 1e-3 }']
MORE_ATTACKS = [*ATTACKS, '{ name = "ig", tv = 1e-2 }']  # the second run: 10 new cells, no new stage

GRID = """\
# benchmarks/stage_reuse.py: {cells} cells sharing {stages} stage models (one per seed)
name = "stage-reuse"
metrics = ["psnr"]

[factors]
dataset = [{{ name = "digits", resolution = 16 }}]
resolution = [16]
model = ["lenet"]
stage = [{{ name = "fedavg", round = 2 }}]
seed = {seeds}            # first: the two workers start on cells of the same stage
attack = [{attacks}]
labels = ["known", "inferred"]

[stages.fedavg]
clients = 2
clients_per_round = 2
local_epochs = 1
batch_size = 8
samples_per_client = 32
test_samples = 100

[attacks.dlg]
iterations = 2

[attacks.idlg]
iterations = 2

[attacks.ig]
iterations = 2

[run]
executor = "local"
threads_per_worker = 1
"""


def write_grid(path: Path, attacks: list[str]) -> Path:
    path.write_text(GRID.format(cells=len(SEEDS) * len(attacks) * 2, stages=len(SEEDS), seeds=SEEDS,
                                attacks=", ".join(attacks)))
    return path


def stage_files(stages: Path) -> int:
    """(setup, round) models in the cache: weights and metadata both written."""
    return sum(len(cached_rounds(folder)) for folder in stages.iterdir() if folder.is_dir()) if stages.exists() else 0


def run_once(label: str, grid_file: Path, out: Path, workers: int) -> tuple[list, dict[str, object]]:
    """Run the grid into ``out``; the table row of what it did, and whether it did what it must."""
    grid = load_grid(grid_file)
    requests = [request for cell in grid.cells for request in stage_requests(cell)]
    planned = planned_trainings(requests, out / "stages")
    before = len(training_events(out / "stages"))
    done_before = len(OutputDir(out).done_ids() & {cell.cell_id for cell in grid.cells})
    run = run_process([sys.executable, "-m", "evalgrid", "run", str(grid_file), "--out", str(out),
                       "--workers", str(workers)], check=False)
    if run.completed.returncode != 0:
        print(run.completed.stderr[-4000:], file=sys.stderr)
    trained = len(training_events(out / "stages")) - before
    done = len(OutputDir(out).done_ids() & {cell.cell_id for cell in grid.cells})
    row = [label, len(grid.cells), len(grid.cells) - done_before, done, len(planned),
           sum(cached for _, cached in planned), f"**{trained}**", stage_files(out / "stages"),
           format_seconds(run.seconds)]
    return row, {"stages": len(planned), "trained": trained, "all_done": done == len(grid.cells),
                 "exit": run.completed.returncode}


def first_two_cells(out: Path) -> str:
    """Which stages the first two cells to start needed, and how far apart they started."""
    import pandas as pd

    if not OutputDir(out).results.exists():
        return ""
    rows = pd.read_parquet(OutputDir(out).results, columns=["seed", "started_at"]).sort_values("started_at")
    (first_seed, first), (second_seed, second) = rows.head(2).itertuples(index=False)
    needed = f"the same untrained stage (seed {first_seed})" if first_seed == second_seed else \
        f"different stages (seeds {first_seed} and {second_seed})"
    return f"The first two cells started {(second - first).total_seconds() * 1e3:.0f} ms apart and needed {needed}. "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="a new or empty folder (default: a new temporary one)")
    parser.add_argument("--workers", type=int, default=2, help="cells run at once by the local executor")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="stage-reuse-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise SystemExit(f"{root} is not empty: the counts must start from an empty stage cache")
    out = root / "out"
    load = os.getloadavg()
    first, first_ok = run_once("50 cells, 5 stages, empty cache", write_grid(root / "grid-50.toml", ATTACKS),
                               out, args.workers)
    together = first_two_cells(out)
    second, second_ok = run_once("+10 cells, same 5 stages", write_grid(root / "grid-60.toml", MORE_ATTACKS),
                                 out, args.workers)
    body = markdown_table(["run", "cells in grid", "cells to run", "cells done", "distinct stages in plan",
                           "already cached", "trainings counted", "stage files cached", "wall time"],
                          [first, second])
    body += ("\n\nTarget: 5 trainings in the first run (one per stage), 0 in the second. "
             f"`evalgrid run` with the local executor, {args.workers} workers of 1 thread; LeNet on digits at "
             "16×16, a 2-round FedAvg of 2 clients per stage, 2 attack iterations per cell. " + together +
             "Trainings are counted from the event file that each training writes into the stage cache "
             "(`evalgrid.fl.stage_cache.training_events`), not from the stage files. The wall time includes the "
             f"CLI's start-up, the workers' imports and the stage trainings (1-minute load average "
             f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end). Runs in {root}.")
    print(section("stage_reuse.py: cells sharing a stage model train it once",
                  f"python benchmarks/stage_reuse.py --workers {args.workers}", body))
    problems = []
    for label, outcome, wanted in (("first run", first_ok, 5), ("second run", second_ok, 0)):
        if outcome["stages"] != len(SEEDS):
            problems.append(f"{label}: the plan has {outcome['stages']} distinct stages, expected {len(SEEDS)}")
        if outcome["trained"] != wanted:
            problems.append(f"{label}: {outcome['trained']} trainings, expected {wanted}")
        if not outcome["all_done"] or outcome["exit"]:
            problems.append(f"{label}: not every cell is done (evalgrid run exited {outcome['exit']})")
    if problems:
        raise SystemExit("stage_reuse: " + "; ".join(problems))


if __name__ == "__main__":
    main()
