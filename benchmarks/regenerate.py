"""Run the benchmarks and rebuild benchmarks/README.md from their figures: one command.

Each script prints its figures as one markdown section (from its first line starting with
"## " to the end of its output); this keeps the latest section of each in
benchmarks/results/NAME.md and writes the README as the introduction below followed by every
script's latest section, in the order of SCRIPTS.

    python benchmarks/regenerate.py            # every script (about an hour on 2 CPU cores)
    python benchmarks/regenerate.py NAME ...   # only these; the others' latest sections are kept
    python benchmarks/regenerate.py --list

Slurm's benchmark needs root on Debian (it starts slurm/cluster/), and so does chaos's full-disk
phase (a tmpfs); breaching's installs
breaching into benchmarks/.breaching-env the first time. A script that fails stops the run and
leaves its section as it was.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# name → arguments; the order is the README's.
SCRIPTS: dict[str, list[str]] = {
    "attack_step": ["--repeats", "5", "--steps", "3", "--threads", "1"],
    "breaching_compare": [],
    "many_attacks": ["--repeats", "5", "--steps", "2", "--check", "8", "--threads", "1"],
    "gpu_options": ["--repeats", "5", "--steps", "2", "--iterations", "60", "--threads", "1"],
    "runner_scale": ["--repeats", "5"],
    "chaos": [],
    "cli_startup": ["--repeats", "5"],
    "stage_reuse": [],
    "prior_training": ["--repeats", "3", "--paper"],
    "early_stopping": [],
    "paper_smoke": [],
    "slurm_dispatch": ["--repeats", "5"],
}

INTRODUCTION = """# benchmarks/

Scripts that print their figures; run them from the repository root with the project's Python
(`pip install -e .` is enough; breaching_compare.py installs breaching for itself, outside the
project's dependencies). `python benchmarks/regenerate.py [NAME ...]` runs them and rewrites this
file from their output: every section below is a script's own output, dated, with the machine it
ran on. Timings are medians of at least 5 runs unless a section says otherwise.
"""


def run(name: str) -> str:
    command = [sys.executable, str(HERE / f"{name}.py"), *SCRIPTS[name]]
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        raise SystemExit(f"{name}.py exited {done.returncode}; its section is left as it was")
    lines = done.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("## ")), None)
    if start is None:
        raise SystemExit(f"{name}.py printed no '## ' section")
    return "\n".join(lines[start:]).strip() + "\n"


def rebuild() -> str:
    sections = [(RESULTS / f"{name}.md").read_text() for name in SCRIPTS if (RESULTS / f"{name}.md").is_file()]
    return "\n".join([INTRODUCTION, *sections])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"scripts to run (default: all): {', '.join(SCRIPTS)}")
    parser.add_argument("--list", action="store_true", help="list the scripts and stop")
    parser.add_argument("--no-run", action="store_true", help="only rebuild the README from benchmarks/results/")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCRIPTS))
        return
    unknown = [n for n in args.names if n not in SCRIPTS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    RESULTS.mkdir(exist_ok=True)
    for name in ([] if args.no_run else args.names or list(SCRIPTS)):
        (RESULTS / f"{name}.md").write_text(run(name))
        (HERE / "README.md").write_text(rebuild())
    (HERE / "README.md").write_text(rebuild())
    print(f"wrote {HERE / 'README.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
