"""Run every table's smoke grid, then its table: prints each run's wall time and how many of the
measured trends agree with the paper.

    python benchmarks/paper_smoke.py [--out runs/paper-smoke] [NAME ...]

Each smoke grid runs with `evalgrid run` (its own [run] settings: local, 2 workers) into
OUT/NAME, from scratch (an existing OUT/NAME is removed first); the wall time includes the
CLI's start-up and any stage training. The tables are written next to the runs as
OUT/NAME.md, and the summary as OUT/summary.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import section  # noqa: E402

from evalgrid.tables.catalog import load_definition, table_names  # noqa: E402

EVALGRID = [sys.executable, "-m", "evalgrid"]


def verdict_summary(name: str, run_dir: Path) -> str:
    """'k of n' measured series agree, per trend of the table, with the other outcomes counted."""
    from evalgrid.tables import regenerate

    parts = []
    for trend, verdicts in regenerate(load_definition(name), run_dir).verdicts:
        judged = [v.outcome for v in verdicts if v.outcome != "not measured"]
        others = sorted({o for o in judged if o != "agrees"})
        detail = "".join(f", {judged.count(o)} {o}" for o in others)
        parts.append(f"{trend.along} ({trend.kind}): {judged.count('agrees')} of {len(judged)} agree{detail}")
    return "; ".join(parts) or "no trend"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/paper-smoke"))
    parser.add_argument("names", nargs="*", help="tables (default: all)")
    args = parser.parse_args()
    from evalgrid.tables.definition import LISTED_ONLY

    names = args.names or [name for name in table_names() if load_definition(name).kind not in LISTED_ONLY]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["| table | smoke grid | cells | wall time | trends agreeing |", "|---|---|---|---|---|"]
    total = 0.0
    for name in names:
        definition = load_definition(name)
        run_dir = args.out / name
        shutil.rmtree(run_dir, ignore_errors=True)
        clock = time.perf_counter()
        run = subprocess.run([*EVALGRID, "run", str(definition.smoke), "--out", str(run_dir)],
                             capture_output=True, text=True)
        wall = time.perf_counter() - clock
        total += wall
        markdown = subprocess.run([*EVALGRID, "table", name, str(run_dir)], capture_output=True, text=True)
        (args.out / f"{name}.md").write_text(markdown.stdout + markdown.stderr)
        verdict = verdict_summary(name, run_dir) if markdown.returncode == 0 else \
            f"table failed: {markdown.stderr.strip()}"
        cells = len(list((run_dir / "cells").glob("*.parquet")))
        failed = len(list((run_dir / "failed").glob("*.parquet")))
        status = f"{cells} done" + (f", {failed} failed" if failed else "") + (
            f", exit {run.returncode}" if run.returncode else "")
        line = f"| {name} | {os.path.relpath(definition.smoke)} | {status} | {wall:.0f} s | {verdict} |"
        print(line, file=sys.stderr, flush=True)
        lines.append(line)
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    minutes, seconds = divmod(round(total), 60)
    body = "\n".join(lines) + f"""

{len(names)} smoke runs, {minutes} min {seconds} s of wall time in all. Each comparison (a step, a level against the
reference, a pair of levels) expects the published series' own direction there; "mixed (k of n ... agree)": some
comparisons go the paper's way and some not; "unclear": the paper gives no direction where something was measured
(a published tie or gap). Smoke grids stand in digits for the papers' datasets and measure PSNR
where the papers report LPIPS (no AlexNet weights can be downloaded here), so only directions are compared. What
each disagreement means is in the smoke grid's comments and the table's notes. Tables: OUT/NAME.md."""
    print(section("paper_smoke.py: the papers' tables at smoke scale", "python benchmarks/paper_smoke.py", body))


if __name__ == "__main__":
    main()
