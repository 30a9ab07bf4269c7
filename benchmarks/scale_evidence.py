"""Does a smoke table's disagreement with the paper shrink at a larger budget? Reruns a table's
smoke grid with every attack's iterations multiplied, more seeds and, optionally, the natural-image
crops of the `photos` dataset in place of the digits, then prints the trend verdicts of the
smoke run and of the scaled run side by side.

    python benchmarks/scale_evidence.py [--out runs/scale] [--factor 4] [--seeds 4] [--photos] NAME ...

The scaled grid extends the smoke grid (same name, so `evalgrid table` reads it as the smoke
companion) and overrides only [attacks.*] iterations, the seed list and, with --photos, the
dataset (32x32 colour crops; the table definitions map `photos` where they map `digits`). The
smoke run is read from OUT/NAME/smoke when present (else run first); the scaled one goes to
OUT/NAME/scaled. Wall times include the CLI's start-up.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paper_smoke import verdict_summary  # noqa: E402

from evalgrid.grid import load_grid  # noqa: E402
from evalgrid.tables.catalog import load_definition  # noqa: E402

EVALGRID = [sys.executable, "-m", "evalgrid"]


def scaled_grid(smoke: Path, factor: int, seeds: int, photos: bool) -> str:
    """The TOML of a grid that extends ``smoke`` with ``factor``× the iterations of each attack."""
    iterations: dict[str, int] = {}
    for cell in load_grid(smoke).cells:
        iterations[cell.attack.name] = max(iterations.get(cell.attack.name, 0), cell.attack.options.iterations)
    lines = [f"extends = {json.dumps(str(smoke.resolve()))}", "", "[factors]",
             f"seed = {list(range(seeds))}"]
    if photos:
        lines.append('dataset = [{ name = "photos", resolution = 32 }]')
        lines.append("resolution = [0]")
    for name, count in iterations.items():
        lines += ["", f"[attacks.{name}]", f"iterations = {count * factor}"]
    return "\n".join(lines) + "\n"


def run(grid: Path, out: Path) -> float:
    clock = time.perf_counter()
    result = subprocess.run([*EVALGRID, "run", str(grid), "--out", str(out)], capture_output=True, text=True)
    if result.returncode:
        print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
    return time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/scale"))
    parser.add_argument("--factor", type=int, default=4, help="iterations multiplier")
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 in the scaled run")
    parser.add_argument("--photos", action="store_true", help="32x32 natural-image crops instead of the digits")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    print("| table | smoke run | scaled run | scaled wall time |")
    print("|---|---|---|---|")
    for name in args.names:
        definition = load_definition(name)
        folder = args.out / name
        smoke_dir, scaled_dir = folder / "smoke", folder / "scaled"
        folder.mkdir(parents=True, exist_ok=True)
        if not (smoke_dir / "grid.toml").is_file():
            run(definition.smoke, smoke_dir)
        grid = folder / "scaled.toml"
        grid.write_text(scaled_grid(definition.smoke, args.factor, args.seeds, args.photos))
        shutil.rmtree(scaled_dir, ignore_errors=True)
        wall = run(grid, scaled_dir)
        print(f"| {name} | {verdict_summary(name, smoke_dir)} | {verdict_summary(name, scaled_dir)} | {wall:.0f} s |",
              flush=True)


if __name__ == "__main__":
    main()
