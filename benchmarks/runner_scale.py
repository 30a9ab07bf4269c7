"""Runner scale: the four things that grow with the number of cells, each timed as a child
process (start-up included) with its peak memory, against its target.

    python benchmarks/runner_scale.py [--workdir DIR] [--repeats 5] [--only 1 2 3 4]

1. ``evalgrid plan GRID`` of a 100,000-cell grid (digits; LeNet and an 8-wide ConvNet; IG and
   iDLG; 25,000 seeds), default table output: < 3 s.
2. The resume check of ``evalgrid run`` over an output directory whose 100,000 cells are all
   done: load the grid, check every result file cheaply and move damaged ones aside
   (``evalgrid.store.heal``: name, magic bytes, footer length), sweep stale temporaries and
   ``cells_to_run`` (the done ids, then the cells left), as the run does before it
   dispatches: < 5 s. The run's plan-time checks
   (``check_ready``) are left out here: they are plan's, measured in (1).
3. ``evalgrid collect DIR`` of 10,000 cell result files (with DIR/grid.toml, so in grid order): < 15 s.
4. ``evalgrid.load(DIR)`` of a 1,000,000-row DIR/results.parquet, DIR/grid.toml of a
   1,000,000-cell grid and DIR/cell_ids.txt beside it (as ``run`` and ``collect`` leave them;
   without cell_ids.txt, load expands grid.toml to tell stale rows: about 20 s more): < 3 s.

The inputs are built under DIR (default: a new temporary folder, removed afterwards): one real
cell is run with ``evalgrid run`` and its result file is the template of every other row (cell
id, factors and config changed per row); the 100,000 done cells of (2) are hard links, one
per cell id as DIR/cells/<id>.parquet, of a real result file written every 10,000 cells (a file
system caps the links to one file). They pass the cheap check, which is what (2) times, but not
the full one: their rows name another cell, so a real ``evalgrid run`` on that folder would move
them aside at its collect and run their cells. The children run the checkout this script belongs to
(PYTHONPATH); figures are the median of ``--repeats`` runs (min–max). The machine's other load
shows in them: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (MIN_REPEATS, REPO, Timing, format_bytes, format_seconds, markdown_table,  # noqa: E402
                    python, run_process, section)

sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from evalgrid.store.results import write_results_file  # noqa: E402

MODELS = ("lenet", "convnet(width=8)")
ATTACKS = ("ig", "idlg")
PLAN_CELLS, COLLECT_FILES, LOAD_ROWS = 100_000, 10_000, 1_000_000
LINKS_PER_FILE = 10_000

RESUME_CHECK = """
import sys
from pathlib import Path
from evalgrid.grid import load_grid
from evalgrid.launch.runner import cells_to_run
from evalgrid.store.atomic import sweep_temporaries
from evalgrid.store.heal import damaged_results, quarantine
from evalgrid.store.layout import OutputDir

grid, out = load_grid(sys.argv[1]), OutputDir(Path(sys.argv[2]))
quarantine(out, damaged_results(out))  # what `run` does under its lock before it counts the cells
sweep_temporaries(out.root, keep_out=out.stages)
pending, held = cells_to_run(grid, out, alongside=False)
print(f"{len(grid.cells)} cells, {len(pending)} pending")
"""

LOAD = "import sys, evalgrid; print(len(evalgrid.load(sys.argv[1])), 'rows')"

TEMPLATE_GRID = """name = "template"
metrics = ["psnr"]
[factors]
dataset = ["digits"]
model = ["lenet"]
attack = [{ name = "ig", iterations = 5 }]
[run]
executor = "debug"
"""  # a cell like those of the grids below, its attack cut short


def grid_text(name: str, seeds: int) -> str:
    """2 models × 2 attacks × ``seeds`` seeds."""
    return (f'name = "{name}"\nmetrics = ["psnr"]\n[factors]\ndataset = ["digits"]\n'
            f'model = ["lenet", {{ name = "convnet", width = 8 }}]\nattack = ["ig", "idlg"]\n'
            f"seed = [{', '.join(map(str, range(seeds)))}]\n")


def evalgrid_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def template_row(work: Path) -> pa.Table:
    """The result file of one real cell, as the runner wrote it."""
    (work / "template.toml").write_text(TEMPLATE_GRID)
    run_process([python(), "-m", "evalgrid", "run", "template.toml", "--out", "template"], cwd=work, env=evalgrid_env())
    return pq.read_table(next((work / "template" / "cells").glob("*.parquet")))


def rows_like(template: pa.Table, count: int, ids: list[str], grid: str) -> pa.Table:
    """``count`` copies of the template row, one per cell of a 2 × 2 × seeds grid, in grid order."""
    combos = list(itertools.product(MODELS, ATTACKS, range(-(-count // 4))))[:count]
    table = template.take(pa.array([0] * count))
    config = template.column("config")[0].as_py()
    columns = {
        "cell_id": pa.array(ids[:count], pa.string()),
        "grid": pa.array([grid] * count, pa.string()),
        "model": pa.array([c[0] for c in combos], pa.string()),
        "attack": pa.array([c[1] for c in combos], pa.string()),
        "seed": pa.array([c[2] for c in combos], pa.int64()),
        "config": pa.array([config.replace('"seed":0', f'"seed":{c[2]}') for c in combos], pa.string()),
    }
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), values)
    return table


@dataclass(frozen=True)
class Case:
    what: str
    size: str
    target_s: float
    command: list[str]


def cell_ids(grid_file: Path) -> list[str]:
    from evalgrid.grid import load_grid

    return [cell.cell_id for cell in load_grid(grid_file).cells]


def build(work: Path) -> list[Case]:
    template = template_row(work)
    plan_grid = work / "plan.toml"
    plan_grid.write_text(grid_text("scale", PLAN_CELLS // 4))

    resume = work / "resume"
    (resume / "cells").mkdir(parents=True)
    ids = cell_ids(plan_grid)
    for start in range(0, len(ids), LINKS_PER_FILE):  # a file system caps the links to one file (ext4: 65,000)
        source = resume / "cells" / f"{ids[start]}.parquet"
        pq.write_table(rows_like(template, 1, [ids[start]], "scale"), source)
        for cell_id in ids[start + 1:start + LINKS_PER_FILE]:
            os.link(source, resume / "cells" / f"{cell_id}.parquet")

    collect = work / "collect"
    (collect / "cells").mkdir(parents=True)
    (collect / "grid.toml").write_text(grid_text("collect", COLLECT_FILES // 4))
    ids = cell_ids(collect / "grid.toml")
    rows = rows_like(template, COLLECT_FILES, ids, "collect")
    for index, cell_id in enumerate(ids):
        pq.write_table(rows.slice(index, 1), collect / "cells" / f"{cell_id}.parquet")

    load = work / "load"
    load.mkdir()
    (load / "grid.toml").write_text(grid_text("load", LOAD_ROWS // 4))
    load_ids = [f"{i:012x}" for i in range(LOAD_ROWS)]
    (load / "cell_ids.txt").write_text("".join(f"{cell_id}\n" for cell_id in load_ids))  # as `evalgrid run` writes it
    write_results_file(rows_like(template, LOAD_ROWS, load_ids, "load"),
                       load / "results.parquet")  # as `evalgrid collect` writes it

    evalgrid = [python(), "-m", "evalgrid"]
    return [
        Case("`evalgrid plan GRID`", f"{PLAN_CELLS:,} cells", 3, [*evalgrid, "plan", str(plan_grid)]),
        Case("resume check of `evalgrid run` (all done)", f"{PLAN_CELLS:,} cells", 5,
             [python(), "-c", RESUME_CHECK, str(plan_grid), str(resume)]),
        Case("`evalgrid collect DIR`", f"{COLLECT_FILES:,} result files", 15, [*evalgrid, "collect", str(collect)]),
        Case("`evalgrid.load(DIR)`", f"{LOAD_ROWS:,} rows", 3, [python(), "-c", LOAD, str(load)]),
    ]


@dataclass(frozen=True)
class Measured:
    case: Case
    timing: Timing
    peak_bytes: int  # the largest of the runs'
    output: str  # the last run's last lines


def measure(case: Case, repeats: int, cwd: Path) -> Measured:
    runs = [run_process(case.command, cwd=cwd, env=evalgrid_env()) for _ in range(repeats)]
    last = runs[-1].completed
    tail = (last.stdout.strip().splitlines() or [""])[-1] + " " + (last.stderr.strip().splitlines() or [""])[-1]
    return Measured(case, Timing(tuple(r.seconds for r in runs)), max(r.peak_bytes for r in runs), tail.strip())


def report(results: list[Measured]) -> str:
    header = ["what", "size", "median wall (min–max)", "target", "peak memory", "met"]
    rows = [[m.case.what, m.case.size,
             f"{format_seconds(m.timing.median)} ({format_seconds(min(m.timing.seconds))}–"
             f"{format_seconds(max(m.timing.seconds))})",
             f"< {m.case.target_s:g} s", format_bytes(m.peak_bytes),
             "met" if m.timing.median < m.case.target_s else "not met"]
            for m in results]
    return markdown_table(header, rows) + f"\n\nMedian of {len(results[0].timing.seconds)} runs each, whole child process " \
                                          f"(interpreter start-up and imports included); peak memory is the largest " \
                                          f"resident set of those runs."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where the inputs are built (default: a temporary folder)")
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS)
    parser.add_argument("--only", nargs="*", type=int, help="measure only these cases (1-4)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="runner-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        raise SystemExit(f"{work}: the work folder must be new or empty")
    try:
        cases = build(work)
        chosen = [c for i, c in enumerate(cases, 1) if not args.only or i in args.only]
        results = []
        for case in chosen:
            results.append(measure(case, args.repeats, work))
            print(f"{case.what}: {results[-1].timing}; {results[-1].output}", file=sys.stderr)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/runner_scale.py" + (f" --repeats {args.repeats}" if args.repeats != MIN_REPEATS else "")
    print(section("runner_scale.py: plan, resume, collect and load at scale", command, report(results)))


if __name__ == "__main__":
    main()
