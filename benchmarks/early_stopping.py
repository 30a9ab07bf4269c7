"""Early stopping on the smoke grids: iterations saved, and what it costs in PSNR.

    python benchmarks/early_stopping.py [--out runs/early-stopping] [--window 20] [--tolerance 1e-3] [GRID ...]

Each smoke grid (default: SoK Table 1, FedLeak Tables 3 and 9) runs twice with `evalgrid run`
(its own [run] settings), from scratch: as written, and with early stopping switched on for every
attack it uses. The second run's grid is a small file in OUT that ``extends`` the smoke grid by
its absolute path and adds ``early_stop_window``/``early_stop_tolerance`` to ``[attacks.NAME]``
of each attack (a factor value's inline options still win for the keys they set; the smoke grids
set none of these). The runs' cells are paired by their factor labels.

Defaults: the smoke attacks run 100-150 iterations; a window of 20 steps (15-20% of the run)
with a tolerance of 1e-3 stops a trial whose loss has flattened out to within 0.1% over 20
steps, while the noisy early descent of signed Adam is not cut short.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, markdown_table, python, run_process, section  # noqa: E402

import evalgrid  # noqa: E402
from evalgrid.grid.cell import FACTOR_NAMES  # noqa: E402
from evalgrid.grid import load_grid  # noqa: E402

GRIDS = ("grids/sok/smoke/table1_local_updates.toml", "grids/fedleak/smoke/table3_benchmarks.toml",
         "grids/fedleak/smoke/table9_local_steps.toml")


def early_stopping_grid(grid: Path, target: Path, window: int, tolerance: float) -> Path:
    """A grid file at ``target`` that is ``grid`` with early stopping on for each of its attacks."""
    loaded = load_grid(grid)
    attacks = sorted({cell.attack.name for cell in loaded.cells})
    body = {"extends": str(grid.resolve()), "name": f"{loaded.name}-early-stop",
            "attacks": {attack: {"early_stop_window": window, "early_stop_tolerance": tolerance}
                        for attack in attacks}}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(tomli_w.dumps(body))
    return target


def run(grid: Path, out: Path) -> float:
    """Wall seconds of ``evalgrid run GRID --out OUT`` from scratch (start-up included)."""
    shutil.rmtree(out, ignore_errors=True)
    return run_process([python(), "-m", "evalgrid", "run", str(grid), "--out", str(out)], cwd=REPO).seconds


def compare(plain_dir: Path, stopped_dir: Path) -> dict[str, float]:
    """Paired figures of the two runs of one grid."""
    keys = list(FACTOR_NAMES)
    plain, stopped = (evalgrid.load(d) for d in (plain_dir, stopped_dir))
    for frame in (plain, stopped):
        if not (frame["status"] == "done").all():
            raise SystemExit(f"{frame['grid'].iloc[0]}: some cells failed")
        for key in keys:
            frame[key] = frame[key].astype(str)
    paired = plain.merge(stopped, on=keys, suffixes=("_plain", "_stopped"), validate="one_to_one")
    if len(paired) != len(plain) or len(paired) != len(stopped):
        raise SystemExit("the two runs' cells do not pair up by their factor labels")
    run_ = paired["attack_iterations_stopped"].sum()
    saved = paired["attack_iterations_saved_stopped"].sum()
    if paired["attack_iterations_plain"].sum() != run_ + saved:
        raise SystemExit("the runs planned different numbers of iterations")
    delta = paired["psnr_stopped"] - paired["psnr_plain"]
    return {"cells": len(paired), "planned": int(run_ + saved), "run": int(run_),
            "saved": float(saved / (run_ + saved)),
            "psnr_plain": paired["psnr_plain"].mean(), "psnr_stopped": paired["psnr_stopped"].mean(),
            "delta_mean": delta.mean(), "delta_worst": delta.min(),
            "stopped_cells": int((paired["attack_iterations_saved_stopped"] > 0).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/early-stopping"))
    parser.add_argument("--window", type=int, default=20, help="early_stop_window (steps)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="early_stop_tolerance (relative)")
    parser.add_argument("grids", nargs="*", type=Path, help=f"smoke grids (default: {', '.join(GRIDS)})")
    args = parser.parse_args()
    grids = args.grids or [REPO / g for g in GRIDS]
    out = args.out.resolve()
    rows = []
    for grid in grids:
        grid = grid.resolve()
        label = grid.relative_to(REPO) if grid.is_relative_to(REPO) else grid
        stem = f"{grid.parent.parent.name}-{grid.stem}"
        stopped_grid = early_stopping_grid(grid, out / "grids" / f"{stem}.toml", args.window, args.tolerance)
        wall_plain = run(grid, out / stem / "plain")
        wall_stopped = run(stopped_grid, out / stem / "early-stop")
        figures = compare(out / stem / "plain", out / stem / "early-stop")
        row = [f"`{label}`", f"{figures['cells']} ({figures['stopped_cells']} stopped)", f"{figures['planned']:,}",
               f"{figures['run']:,}", f"{figures['saved']:.0%}",
               f"{figures['psnr_plain']:.2f} / {figures['psnr_stopped']:.2f}",
               f"{figures['delta_mean']:+.2f} / {figures['delta_worst']:+.2f}",
               f"{wall_plain:.0f} s / {wall_stopped:.0f} s"]
        print(" | ".join(row), file=sys.stderr, flush=True)
        rows.append(row)
    table = markdown_table(["smoke grid", "cells", "iterations planned", "run with early stopping", "saved",
                            "mean PSNR without / with (dB)", "ΔPSNR per cell: mean / worst (dB)",
                            "wall without / with"], rows)
    body = f"""{table}

Early stopping with `early_stop_window = {args.window}`, `early_stop_tolerance = {args.tolerance:g}` on every attack
of the grid, against the same grid as written; cells paired by their factor labels. "stopped": cells in which
early stopping ended at least one trial. Iterations are summed over cells, trials and restarts. Wall times are
whole `evalgrid run`s from scratch (CLI start-up included, the grid's own workers and threads) on a machine
shared with other jobs: only large differences mean something."""
    command = f"python benchmarks/early_stopping.py --window {args.window} --tolerance {args.tolerance:g}"
    print(section("early_stopping.py: iterations saved and PSNR lost on the smoke grids", command, body))


if __name__ == "__main__":
    main()
