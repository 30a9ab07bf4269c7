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

## gpu.sh: the GPU path, end to end, in one command

`bash benchmarks/gpu.sh` on a machine with a CUDA GPU, after the README's install; no argument.

**On the lent device machine** (no network there; its `python3` is 3.12 with torch 2.11,
torchvision, numpy, pandas, pyarrow, click, scipy, scikit-learn, matplotlib, pillow, but no
`lpips`, `submitit` or `tomli-w`): evalgrid runs from the checkout, not installed (`gpu.sh` puts
the repository on `PYTHONPATH`), and the three missing pure-Python packages travel as wheels.
Here, once: `echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps
--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 -d
.whl lpips==0.1.4 submitit==1.5.4 tomli-w==1.2.0`; then one device call with `carry = [".whl"]`
and `timeout_s = 600`: `python3 -m pip install -q --no-index --no-deps --no-compile --target
/tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && bash benchmarks/gpu.sh --out
$OUT/gpu.md`. The LPIPS weights are not there either: e2e runs without LPIPS.

**No GPU has run it yet (2026-12-07).** Every default stays the safe one until one does:
`cells_per_device = 1`, no speed switch (`speedups`), no stacking (`stack_trials = 0` leaves it to the rule
in `evalgrid/evaluation/packing.py`, which holds only the CPU's measurements, 0.9× and 0.5×, so it
says off on every device).

It runs six sections, each under its own time budget (under 8 minutes in all on one H100), and
prints each figure as it goes:

| section | what | target | budget |
|---|---|---|---|
| e2e | `evalgrid run --device cuda` on one small grid: every attack of `grids/coverage/attacks.toml` undefended and every defense of `grids/coverage/defenses.toml` against IG, 32×32 digits, LPIPS too when `evalgrid weights list` shows alexnet; then the same cells with `--device cpu` (same seeds, the same trained priors) and the max \\|difference\\| of each metric and of `final_loss` | every cell done on both | 100 s |
| step | `attack_step.py`: IG's and FedLeak's step against the minimal loop, ConvNet64 b1 and b8, ResNet-18 b4 | ≤ 1.1× | 40 s |
| lanes | `many_attacks.py`: IG with T = 10 trials on ConvNet64 b1 stacked, 8 ResNet-18 b4 cells packed, against one at a time (attack-iterations per second), and whether the lanes give the sequential numbers | ≥ 5×, ≥ 3× | 40 s |
| memory | peak GPU memory of one cell's attack, and per lane stacked or packed; the CUDA context of a process | – | 20 s |
| cells | `evalgrid run --device cuda --cells-per-device k`, k = 1 (one at a time), 2, 4, 8, and `--stack-trials 10` at k = 1 and 8, on 16 cells of each workload: attack-iterations per second per GPU, from the first cell's start to the last one's end | the best of lanes and cells: ≥ 5×, ≥ 3× | 200 s |
| switches | `gpu_options.py`: tf32, channels_last, bf16, fp16 against the plain loop: time on ConvNet64 b8 and ResNet-18 b4, mean PSNR on 3 victims after 100 iterations | \\|ΔPSNR\\| ≤ 0.1 dB | 45 s |

It ends with a table of every figure (section, figure, value, target, met), the device, torch,
CUDA and cuDNN versions and the date, then the defaults the figures support (the `Measurement`
rows for `packing.MEASURED`, the best `cells_per_device`, the switches that are equally good and
at least 1.1× faster) and each section's own table, and writes all of it to
`benchmarks/results/gpu-<date>.md`. A section that fails prints its traceback, the table marks it
failed, and the next one runs; the exit code is 1 when any failed. `--sections cells,switches`
reruns some (into `gpu-<date>-cells-switches.md`); `--out FILE` writes elsewhere. The cells'
span includes what each worker pays in its first cell (CUDA's start, torch._dynamo's import by
the first optimiser: 2-4 s on a CPU) and, for k above 1, the first cell that runs alone while
the pool measures its memory: it is what a run of 16 cells gets, not a steady state, which the
lanes section measures.

`bash benchmarks/gpu.sh --dry-run` runs every section's code on the CPU at the smallest sizes
(width-4 ConvNets, 2 trials or cells, 2 iterations, k = 1 alone and k = 2 with stacked trials;
about 45 s on 2 busy cores) and writes no file unless `--out` names one;
`tests/test_gpu_check.py` runs it, so the script cannot rot.

To set the defaults from a run: add its `Measurement` rows to `MEASURED` in
`evalgrid/evaluation/packing.py` (stacking is on for a workload on a device whose latest
measured speed-up is at least 1.1×; a `stack_trials` the user sets always wins), and change
`cells_per_device` and `speedups` in `evalgrid/grid/sections.py` only from a measured figure,
with the device and the date beside each default changed.
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
