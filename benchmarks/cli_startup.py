"""Command start-up: the commands people run on a cluster's login node, each timed as a whole
child process (interpreter start-up and imports included), median of ``--repeats``, against
issue 16's targets, with whether the process imported torch.

    python benchmarks/cli_startup.py [--repeats 5] [--workdir DIR]

1. ``evalgrid --help``: < 0.5 s.
2. ``evalgrid status DIR`` of a 2,000-cell output directory whose cells are all done: < 1 s.
3. ``evalgrid plan GRID`` of a 100,000-cell grid (default table output): < 1.5 s.

The 2,000-cell DIR is made as ``evalgrid run`` leaves it (grid.toml, cell_ids.txt, one result
file per cell: hard links of one real cell's result, which ``status`` lists but does not open).
The children run the checkout this script belongs to (PYTHONPATH). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (MIN_REPEATS, Timing, format_bytes, format_seconds, markdown_table, python,  # noqa: E402
                    run_process, section)
from runner_scale import cell_ids, evalgrid_env, grid_text, rows_like, template_row  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402

STATUS_CELLS, PLAN_CELLS = 2_000, 100_000
TORCH_PROBE = ("import runpy, sys\nsys.argv = ['evalgrid', *sys.argv[1:]]\ntry:\n    runpy.run_module('evalgrid', "
               "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)\n")


def build(work: Path) -> list[tuple[str, str, float, list[str]]]:
    template = template_row(work)
    status_dir = work / "status"
    (status_dir / "cells").mkdir(parents=True)
    (status_dir / "grid.toml").write_text(grid_text("status", STATUS_CELLS // 4))
    ids = cell_ids(status_dir / "grid.toml")
    (status_dir / "cell_ids.txt").write_text("".join(f"{cell_id}\n" for cell_id in ids))
    source = status_dir / "cells" / f"{ids[0]}.parquet"
    pq.write_table(rows_like(template, 1, ids[:1], "status"), source)
    for cell_id in ids[1:]:
        os.link(source, status_dir / "cells" / f"{cell_id}.parquet")
    plan_grid = work / "plan.toml"
    plan_grid.write_text(grid_text("scale", PLAN_CELLS // 4))
    return [("`evalgrid --help`", "", 0.5, ["--help"]),
            ("`evalgrid status DIR`", f"{STATUS_CELLS:,} cells, all done", 1.0, ["status", str(status_dir)]),
            ("`evalgrid plan GRID`", f"{PLAN_CELLS:,} cells", 1.5, ["plan", str(plan_grid)])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS)
    parser.add_argument("--workdir", type=Path, help="where the inputs are built (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cli-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for what, size, target, command in build(work):
            runs = [run_process([python(), "-c", TORCH_PROBE, *command], cwd=work, env=evalgrid_env())
                    for _ in range(args.repeats)]
            timing = Timing(tuple(run.seconds for run in runs))
            imported = runs[-1].completed.stderr.strip().splitlines()[-1]
            rows.append([what, size, f"{format_seconds(timing.median)} ({format_seconds(min(timing.seconds))}–"
                                     f"{format_seconds(max(timing.seconds))})", f"< {target:g} s",
                         format_bytes(max(run.peak_bytes for run in runs)), "yes" if imported == "True" else "no",
                         "met" if timing.median < target else "not met"])
            print(f"{what}: {timing}", file=sys.stderr)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    header = ["command", "size", "median wall (min–max)", "target", "peak memory", "imports torch", "met"]
    command = "python benchmarks/cli_startup.py" + (f" --repeats {args.repeats}" if args.repeats != MIN_REPEATS else "")
    print(section("cli_startup.py: start-up of the login-node commands", command, markdown_table(header, rows)))


if __name__ == "__main__":
    main()
