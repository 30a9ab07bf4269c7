"""benchmarks/gpu.sh's driver: one run that proves the GPU path and prints every figure (issue 19).

Each section runs under its own time budget and prints its figures as it goes:

- ``e2e``: a small grid through the real CLI, ``evalgrid run --device cuda``: every attack of
  grids/coverage/attacks.toml undefended and every defense of grids/coverage/defenses.toml
  against IG (LPIPS too when its weights are in the torch cache), then the same cells on the CPU
  (same seeds, the same trained priors) and the largest |difference| of each metric.
- ``step``: the attack step against a minimal loop of the same maths (attack_step.py).
- ``lanes``: stacked trials and packed cells against one attack at a time (many_attacks.py).
- ``memory``: GPU memory per cell: the peak one attack allocates, and per lane when stacked.
- ``cells``: ``evalgrid run`` one cell at a time against ``--cells-per-device`` k,
  ``--stack-trials`` and ``--pack-cells`` (cells packed as lanes by the runner itself):
  attack-iterations per second per GPU, from the cells' start and end times.
- ``switches``: tf32, channels_last, bf16, fp16 with their PSNR deltas (gpu_options.py).

A section that fails prints its error, the table marks it failed and the next one runs; the
script exits 1 at the end when any failed. It ends with a table of every figure, the device,
torch and CUDA versions and the date, written to benchmarks/results/gpu-<date>.md (``--out``:
elsewhere). ``--dry-run`` runs every section's code on the CPU at the smallest sizes (k = 1
alone, k = 2 with stacked trials, packs of 2 cells) and writes no file unless ``--out`` names
one; ``--sections`` runs some sections only (a rerun of one that failed), into
gpu-<date>-<sections>.md.

    bash benchmarks/gpu.sh [--dry-run] [--out FILE] [--sections e2e,step,lanes,memory,cells,switches]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import tomli_w
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attack_step  # noqa: E402
import gpu_options  # noqa: E402
import many_attacks  # noqa: E402
from common import REPO, cpu_model, format_bytes, markdown_table  # noqa: E402
from problems import CASES, Case, problem  # noqa: E402

from evalgrid.evaluation.packing import CELLS, PAYS_AT, TRIALS, Measurement, device_name, stacking_pays  # noqa: E402
from evalgrid.evaluation.speedups import SPEEDUPS  # noqa: E402
from evalgrid.grid.factors import FACTORS  # noqa: E402
from evalgrid.store.atomic import atomic_write_text  # noqa: E402

COVERAGE = REPO / "grids" / "coverage"
RESULTS = Path(__file__).resolve().parent / "results"
TINY = (("width", 4),)  # the dry run's models
SWITCHES = ("none", *SPEEDUPS)
MIN_CLI_ITERATIONS = 10
CELLS_PER_DEVICE = "cells_per_device"


@dataclass(frozen=True)
class Sizes:
    """What each section does, on which device, and its time budget in seconds."""

    device: str
    threads: int  # torch threads of this process (0: torch's default)
    trials_case: Case  # IG with `trials` trials on it (the issue: ConvNet64 batch 1, T = 10)
    trials: int
    cells_case: Case  # `cells` cells of it at once (the issue: 8 ResNet-18 batch-4 cells)
    cells: int
    step_cases: tuple[Case, ...]
    repeats: int  # timed blocks, after one untimed block
    steps: int  # steps per timed block
    check: int  # iterations of the check that stacked lanes give the sequential numbers
    ks: tuple[int, ...]  # --cells-per-device values; the first, 1, is one at a time
    stack_ks: tuple[int, ...]  # --cells-per-device values that also run with --stack-trials
    packs: tuple[int, ...]  # --pack-cells values (with one cell per device): cells packed as lanes
    cli_workloads: tuple[str, ...]  # the workloads `cells` runs through `evalgrid run`
    cli_seconds: float  # one-at-a-time attack work a CLI run is sized to (0: cli_iterations)
    cli_iterations: int  # iterations per trial when no step rate sizes them
    run_timeout: float  # one `evalgrid run`
    switch_timed: tuple[Case, ...]
    switch_quality: Case
    switch_seeds: tuple[int, ...]
    switch_iterations: int
    e2e_values: int | None  # attacks and defenses taken from each coverage list (None: all)
    budgets: dict[str, float]


FULL = Sizes(device="cuda", threads=0, trials_case=Case("convnet", 1), trials=10, cells_case=Case("resnet18", 4),
             cells=8, step_cases=CASES, repeats=5, steps=5, check=8, ks=(1, 2, 4, 8), stack_ks=(1, 8), packs=(8,),
             cli_workloads=(TRIALS, CELLS), cli_seconds=8.0, cli_iterations=20, run_timeout=90,
             switch_timed=gpu_options.TIMED, switch_quality=gpu_options.QUALITY,
             switch_seeds=gpu_options.QUALITY_SEEDS, switch_iterations=100, e2e_values=None,
             budgets={"e2e": 100, "step": 40, "lanes": 40, "memory": 20, "cells": 200, "switches": 45})
DRY = Sizes(device="cpu", threads=1, trials_case=Case("convnet", 1, TINY), trials=2,
            cells_case=Case("convnet", 4, TINY), cells=2, step_cases=(Case("convnet", 1, TINY),), repeats=1, steps=1,
            check=2, ks=(1,), stack_ks=(2,), packs=(2,), cli_workloads=(TRIALS,), cli_seconds=0.0, cli_iterations=2,
            run_timeout=120, switch_timed=(Case("convnet", 1, TINY),), switch_quality=Case("convnet", 1, TINY),
            switch_seeds=(0,), switch_iterations=2, e2e_values=2, budgets=dict.fromkeys(FULL.budgets, 180))


@dataclass(frozen=True)
class Figure:
    """One row of the final table."""

    section: str
    what: str
    value: str
    target: str = ""
    met: str = ""


@dataclass
class Findings:
    """Everything the sections measured, in the order they measured it."""

    sizes: Sizes
    workdir: Path
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # each section's own table
    rates: dict[str, float] = field(default_factory=dict)  # one-at-a-time it/s by workload, from `lanes`
    speedups: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # workload -> (how, ×)
    k_speedups: dict[str, dict[int, float]] = field(default_factory=dict)  # workload -> k -> × (no stacking)
    switches: dict[str, gpu_options.SwitchFigures] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        target = f" (target {figure.target}: {figure.met})" if figure.target else ""
        print(f"[{figure.section}] {figure.what}: {figure.value}{target}", flush=True)

    def detail(self, title: str, header: Sequence[str], rows: Sequence[Sequence[object]], note: str = "") -> None:
        self.details.append(f"### {title}\n\n{markdown_table(header, rows)}" + (f"\n\n{note}" if note else ""))
        print(self.details[-1] + "\n", flush=True)

    def workload(self, name: str) -> str:
        s = self.sizes
        return (f"IG, T = {s.trials} trials, {s.trials_case}" if name == TRIALS
                else f"IG, {s.cells} cells, {s.cells_case}")


class SectionFailed(RuntimeError):
    """Some of a section's figures could not be measured (its rows say which)."""


class OverBudget(Exception):
    """A section ran past its time budget (not a RuntimeError: nothing inside a section catches it)."""


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


# --------------------------------------------------------------------------- running the CLI


def run_cli(args: Sequence[object], timeout: float) -> subprocess.CompletedProcess:
    """``evalgrid ARGS`` in its own process group, killed whole (workers too) when it outlives
    ``timeout`` or this process is interrupted (a section's budget)."""
    command = [sys.executable, "-m", "evalgrid", *map(str, args)]
    print("$ evalgrid " + " ".join(map(str, args)), flush=True)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    started = time.perf_counter()
    try:
        out, err = process.communicate(timeout=timeout)
        print(f"  exit {process.returncode} after {time.perf_counter() - started:.1f} s", flush=True)
    except BaseException as error:
        with contextlib.suppress(ProcessLookupError):  # it may have ended just then
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        if isinstance(error, subprocess.TimeoutExpired):
            raise RuntimeError(f"`evalgrid {args[0]}` ran past its {timeout:.0f} s") from None
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def cli_error(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return f"exit {done.returncode}: " + " ".join(lines[-3:])[-400:]


def load_results(out: Path) -> pd.DataFrame:
    import evalgrid

    return evalgrid.load(out)


# --------------------------------------------------------------------------- e2e


def e2e_grid(workdir: Path, values: int | None, lpips: bool) -> Path:
    """One grid of every attack of coverage/attacks.toml undefended and every defense of
    coverage/defenses.toml against its first attack (IG), at 32×32 (LPIPS' least is 31), its
    priors in a stage cache that both devices' runs share (so both attack through the same ones)."""
    attacks_grid = tomllib.loads((COVERAGE / "attacks.toml").read_text())
    attacks = attacks_grid["factors"]["attack"][:values]
    defenses = tomllib.loads((COVERAGE / "defenses.toml").read_text())["factors"]["defense"][:values]
    metrics = tomllib.loads((COVERAGE / "base.toml").read_text())["metrics"] + (["lpips"] if lpips else [])
    grid = {"extends": str(COVERAGE / "attacks.toml"), "name": "gpu-check-e2e", "metrics": metrics,
            "description": "Every attack undefended and every defense against IG, on the GPU and the CPU.",
            "factors": {"dataset": [{"name": "digits", "resolution": 32}], "attack": attacks, "defense": defenses},
            "exclude": [*attacks_grid.get("exclude", []), {"attack": attacks[1:], "defense": defenses[1:]}],
            "run": {"stage_cache": str(workdir / "e2e-stages")}}
    path = workdir / "e2e.toml"
    path.write_text(tomli_w.dumps(grid))
    return path


def lpips_weights_present() -> bool:
    from evalgrid.catalogue import METRICS
    from evalgrid.models.weights import missing_weights

    return not missing_weights(METRICS["lpips"].required_weights)


def max_differences(first: pd.DataFrame, second: pd.DataFrame,
                    columns: Sequence[str]) -> dict[str, tuple[float, str]]:
    """Each column's largest |first − second| over the cells done in both (paired by cell_id)
    and the cell where it is; NaN in both counts as equal, NaN in one only as infinitely far."""
    a = first[first.status == "done"].set_index("cell_id")
    b = second[second.status == "done"].set_index("cell_id")
    common = a.index.intersection(b.index)
    largest = {}
    for column in columns:
        x, y = a.loc[common, column].astype(float), b.loc[common, column].astype(float)
        difference = (x - y).abs().where(x.isna() == y.isna(), float("inf")).fillna(0.0)
        largest[column] = (float(difference.max()), str(difference.idxmax())) if len(common) else (float("nan"), "")
    return largest


def component_names(frame: pd.DataFrame, factor: str) -> set[str]:
    """The catalogue names a factor's column holds ("none" for no defense; each member of a composition)."""
    names = set()
    for config in frame["config"]:
        value = json.loads(config)[factor]
        steps = value if isinstance(value, list) else [value]
        names.update([step["name"] for step in steps] if steps else ["none"])
    return names


def e2e(findings: Findings) -> None:
    sizes, workdir = findings.sizes, findings.workdir
    lpips = lpips_weights_present()
    grid = e2e_grid(workdir, sizes.e2e_values, lpips)
    frames = {}
    for label, device, flags in ((sizes.device, sizes.device, ()), ("cpu twin", "cpu", ("--no-check",))):
        out = workdir / f"e2e-{label.replace(' ', '-')}"  # the twin's inputs were checked by the first run
        done = run_cli(["run", grid, "--out", out, "--device", device, *flags], sizes.budgets["e2e"])
        if done.returncode not in (0, 1):  # 1: some cells failed, which the rows say
            raise SectionFailed(f"`evalgrid run --device {device}`: {cli_error(done)}")
        frames[label] = load_results(out)
    gpu, cpu = frames[sizes.device], frames["cpu twin"]
    for factor in ("attack", "defense"):
        ran, catalogue = component_names(gpu, factor), set(FACTORS[factor].registry.names())
        findings.add(Figure("e2e", f"{factor}s run", f"{len(ran & catalogue)} of {len(catalogue)} in the catalogue"))
    if not lpips:
        findings.add(Figure("e2e", "LPIPS", "not measured: its weights are not in the torch cache "
                                            "(`evalgrid weights list`)"))
    problems = []
    for label, frame in frames.items():
        failed = frame[frame.status != "done"]
        findings.add(Figure("e2e", f"cells done on {label}", f"{len(frame) - len(failed)} of {len(frame)}",
                            "all", verdict(failed.empty)))
        problems += [f"{label} {row.attack}/{row.defense}: {row.error_type}: {row.error_message}"[:300]
                     for row in failed.itertuples()]
    columns = [c for c in (*tomllib.loads(grid.read_text())["metrics"], "final_loss") if c in gpu and c in cpu]
    rows = []
    for column, (largest, cell) in max_differences(gpu, cpu, columns).items():
        where = gpu.set_index("cell_id").loc[cell] if cell else None
        at = f"cell {cell} ({where.attack}, {where.defense})" if where is not None else "no cell done on both"
        findings.add(Figure("e2e", f"max difference {column} ({sizes.device} − cpu)", f"{largest:.3g}", "", ""))
        rows.append([column, f"{largest:.3g}", at])
    findings.detail(f"e2e: the same cells on {sizes.device} and on the CPU", ["metric", "max |difference|", "where"],
                    rows, f"{len(gpu)} cells: every attack undefended and every defense against IG; "
                          f"same seeds, same trained priors (one stage cache). Failures: {problems or 'none'}")
    if problems:
        raise SectionFailed(f"{len(problems)} cell(s) failed: {problems[0]}")


# --------------------------------------------------------------------------- step, lanes, memory


def step(findings: Findings) -> None:
    sizes, rows = findings.sizes, []
    for attack_name in attack_step.MINIMAL:
        for case in sizes.step_cases:
            measured = attack_step.measure(attack_name, case, sizes.repeats, 2 * sizes.steps, sizes.device)
            ratio = measured["evalgrid"] / measured["minimal"]
            rows.append(attack_step.step_row(attack_name, case, measured))
            findings.add(Figure("step", f"{attack_name} {case}: evalgrid ÷ minimal loop", f"{ratio:.2f}",
                                f"≤ {attack_step.TARGET_RATIO}", verdict(ratio <= attack_step.TARGET_RATIO)))
    findings.detail("step: one attack iteration against a minimal loop", attack_step.STEP_HEADER, rows)


def lane_cases(sizes: Sizes) -> dict[str, tuple]:
    return many_attacks.lane_cases(sizes.device, sizes.trials_case, sizes.trials, sizes.cells_case, sizes.cells)


def lanes(findings: Findings) -> None:
    sizes, rows = findings.sizes, []
    for workload, (title, problems, trials, target) in lane_cases(sizes).items():
        one, together = many_attacks.throughput(problems, trials, sizes.repeats, sizes.steps, sizes.device)
        rows.append(many_attacks.lane_row(title, one, together, target,
                                          many_attacks.agreement(problems, trials, sizes.check)))
        findings.rates[workload] = one
        findings.speedups.setdefault(workload, []).append(("stacked lanes", together / one))
        findings.add(Figure("lanes", f"{findings.workload(workload)}: stacked ÷ one at a time",
                            f"{together / one:.2f}× ({together:.1f} it/s)", f"≥ {target:.0f}×",
                            verdict(together / one >= target)))
    findings.detail("lanes: stacked trials and packed cells (the engine, in one process)", many_attacks.LANES_HEADER,
                    rows, "Attack-iterations per second; a stacked step of L lanes counts L.")


def peak_memory(device: str, work: Callable[[], object]) -> int | None:
    """Bytes ``work`` allocated on the GPU at its peak, beyond what was allocated before; None on the CPU."""
    if device != "cuda":
        work()
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    work()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def attack_steps(sizes: Sizes, problems_of: Callable[[], list], trials: int) -> Callable[[], None]:
    """A few steps of one attack (one problem, one trial) or of stacked lanes, from building the problems on."""
    def work() -> None:
        views = [p.view for p in problems_of()]
        stacked = len(views) * trials > 1
        attack, state = many_attacks.stacked_attack(views, trials) if stacked else many_attacks.one_attack(views[0])
        for _ in range(max(2, sizes.steps)):
            attack.step(None if stacked else views[0], state)
    return work


def outside_tensors() -> tuple[int, int]:
    """GPU memory this process holds beyond torch's cache of tensors (its CUDA context, the
    libraries' workspaces; and any other process's on the same GPU), and the GPU's total."""
    gc.collect()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    return total - free - torch.cuda.memory_reserved(), total


def memory(findings: Findings) -> None:
    sizes, rows = findings.sizes, []
    if sizes.device == "cuda":
        held, total = outside_tensors()
        findings.add(Figure("memory", "held by a process beyond its tensors (CUDA context, libraries)",
                            f"{format_bytes(held)} of {format_bytes(total)}"))
    for case, count, trials in ((sizes.trials_case, 1, 1), (sizes.trials_case, 1, sizes.trials),
                                (sizes.cells_case, 1, 1), (sizes.cells_case, sizes.cells, 1)):
        lanes_run = count * trials
        peak = peak_memory(sizes.device, attack_steps(
            sizes, lambda c=case, n=count: [problem(c, seed, sizes.device) for seed in range(n)], trials))
        what = (f"{case}, one cell, one trial" if lanes_run == 1 else
                f"{case}, per lane of {lanes_run} stacked ({'trials' if trials > 1 else 'cells'})")
        value = "– (no GPU: the code ran, nothing to measure)" if peak is None else format_bytes(peak / lanes_run)
        rows.append([what, value])
        findings.add(Figure("memory", what, value))
    findings.detail("memory: GPU memory per cell", ["what", "peak allocated (per lane)"], rows,
                    "torch.cuda.max_memory_allocated over building the problems and a few attack steps; each "
                    "worker process of --cells-per-device also holds its own CUDA context.")


# --------------------------------------------------------------------------- cells through the CLI


def cells_grid(workdir: Path, sizes: Sizes, workload: str, iterations: int) -> Path:
    """The workload's cells (:func:`cli_cells`), differing only in seed (the victim and the start)."""
    case, trials = (sizes.trials_case, sizes.trials) if workload == TRIALS else (sizes.cells_case, 1)
    grid = {"name": f"gpu-check-{workload}", "metrics": ["psnr"],
            "factors": {"dataset": [{"name": "photos", "resolution": 32}],
                        "model": [{"name": case.model, **dict(case.options)}],
                        "attack": [{"name": "ig", "iterations": iterations}], "batch_size": [case.batch_size],
                        "trials": [trials], "labels": ["known"], "seed": list(range(cli_cells(sizes)))},
            "run": {"executor": "local", "threads_per_worker": 1, "curve_points": 0}}
    path = workdir / f"cells-{workload}.toml"
    path.write_text(tomli_w.dumps(grid))
    return path


def cli_cells(sizes: Sizes) -> int:
    """Cells per CLI run: twice the largest k, so that the largest k runs at full width most of the
    time (with k above 1 on a GPU, the pool runs one cell alone first to measure its memory)."""
    return 2 * max(*sizes.ks, *sizes.stack_ks)


def cli_iterations(sizes: Sizes, rate: float | None, cells: int, trials: int) -> int:
    """Iterations per trial that make the one-at-a-time run about ``sizes.cli_seconds`` of attack
    steps at ``rate`` (it/s, the `lanes` section's one at a time); ``sizes.cli_iterations`` without one."""
    if not rate or not sizes.cli_seconds:
        return sizes.cli_iterations
    return max(MIN_CLI_ITERATIONS, round(sizes.cli_seconds * rate / (cells * trials)))


def most_at_once(frame: pd.DataFrame) -> int:
    """The most cells that ran at the same time, from their start and end times."""
    events = sorted([(t, 1) for t in frame.started_at] + [(t, -1) for t in frame.finished_at],
                    key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def cells_rate(out: Path, stacked: int, packed: int = 1) -> tuple[float, int, int]:
    """Attack-iterations per second over the span from the first cell's start to the last one's
    end, the iterations, and the most cells at once; fails when a cell failed, did not stack its
    trials or was not packed with others as asked."""
    frame = load_results(out)
    failed = frame[frame.status != "done"]
    if not failed.empty:
        first = failed.iloc[0]
        raise SectionFailed(f"{len(failed)} cell(s) failed: {first.error_type}: {first.error_message}")
    if stacked > 1 and frame.trials_stacked.max() < stacked:
        raise SectionFailed(f"asked for {stacked} stacked trials, the cells ran {frame.trials_stacked.max()}")
    if packed > 1 and frame.cells_packed.max() < packed:
        raise SectionFailed(f"asked for packs of {packed} cells, the largest had {frame.cells_packed.max()}")
    span = (frame.finished_at.max() - frame.started_at.min()).total_seconds()
    iterations = int(frame.attack_iterations.sum())
    return iterations / span, iterations, most_at_once(frame)


@dataclass(frozen=True)
class Mode:
    """One way of running a workload's cells through `evalgrid run`."""

    name: str
    k: int  # --cells-per-device
    stacked: int = 1  # --stack-trials: trials the cells must have run together
    packed: int = 1  # --pack-cells: cells that must have run as lanes of one attack

    @property
    def flags(self) -> tuple[object, ...]:
        return ("--cells-per-device", self.k, *(("--stack-trials", self.stacked) if self.stacked > 1 else ()),
                "--pack-cells", self.packed)


def cli_modes(sizes: Sizes, trials: int) -> list[Mode]:
    """Each k of ``sizes.ks`` (the first, k = 1, is one at a time: the baseline), then stacked
    trials with each k of ``sizes.stack_ks``, then cells packed as lanes in packs of each of ``sizes.packs``."""
    modes = [Mode(f"{CELLS_PER_DEVICE} = {k}" + (" (one at a time)" if k == 1 else ""), k) for k in sizes.ks]
    if trials > 1:
        modes += [Mode(f"{CELLS_PER_DEVICE} = {k}, stack_trials = {trials}", k, trials) for k in sizes.stack_ks]
    modes += [Mode(f"pack_cells = {n}", 1, packed=n) for n in sizes.packs]
    return modes


def cells(findings: Findings) -> None:
    sizes, failures = findings.sizes, []
    for workload in sizes.cli_workloads:
        trials = sizes.trials if workload == TRIALS else 1
        iterations = cli_iterations(sizes, findings.rates.get(workload), cli_cells(sizes), trials)
        grid = cells_grid(findings.workdir, sizes, workload, iterations)
        rows, baseline = [], None  # the one-at-a-time rate
        for index, mode in enumerate(cli_modes(sizes, trials)):
            started = time.perf_counter()
            try:
                out = findings.workdir / f"cells-{workload}-{index}"
                done = run_cli(["run", grid, "--out", out, "--device", sizes.device, "--no-check", *mode.flags],
                               sizes.run_timeout)
                if done.returncode != 0:
                    raise SectionFailed(cli_error(done))
                rate, ran, at_once = cells_rate(out, mode.stacked, mode.packed)
            except (SectionFailed, RuntimeError) as error:
                failures.append(f"{workload}, {mode.name}: {error}")
                rows.append([mode.name, "**failed**", "–", "–", "–", str(error)[:300]])
                findings.add(Figure("cells", f"{findings.workload(workload)}, {mode.name}",
                                    f"**failed**: {error}"[:300]))
                continue
            baseline = rate if index == 0 else baseline
            ratio = f"{rate / baseline:.2f}×" if baseline else "– (one at a time failed)"
            if index and baseline:
                findings.speedups.setdefault(workload, []).append((mode.name, rate / baseline))
                if mode.stacked == 1 and mode.packed == 1:
                    findings.k_speedups.setdefault(workload, {})[mode.k] = rate / baseline
            rows.append([mode.name, f"{rate:.1f}", ratio, str(at_once), f"{time.perf_counter() - started:.1f} s",
                         f"{ran} iterations"])
            findings.add(Figure("cells", f"{findings.workload(workload)}, {mode.name}", f"{rate:.1f} it/s ({ratio})"))
        findings.detail(f"cells: `evalgrid run --device {sizes.device}`, {findings.workload(workload)}, "
                        f"{cli_cells(sizes)} cells of {iterations} iterations per trial",
                        ["mode", "attack-it/s per device", "× one at a time", "most cells at once", "run wall",
                         "notes"], rows,
                        "Attack-iterations of all cells ÷ (last cell's end − first cell's start): cell set-up and "
                        "scoring included, process start-up not.")
    if failures:
        raise SectionFailed("; ".join(failures))


def switches(findings: Findings) -> None:
    sizes = findings.sizes
    rows, findings.switches = gpu_options.switch_rows(SWITCHES, sizes.switch_timed, sizes.switch_quality,
                                                      sizes.switch_seeds, sizes.switch_iterations, sizes.steps,
                                                      sizes.repeats, sizes.device)
    for row in rows:
        figures = findings.switches.get(row[0])
        if figures is None:
            findings.add(Figure("switches", row[0], row[-1]))
            continue
        delta = figures.psnr - findings.switches["none"].psnr
        findings.add(Figure("switches", row[0], f"{', '.join(row[1:-2])}; ΔPSNR {delta:+.2f} dB",
                            f"|ΔPSNR| ≤ {gpu_options.EQUALLY_GOOD_DB} dB",
                            verdict(abs(delta) <= gpu_options.EQUALLY_GOOD_DB)))
    header = ["switch", *(f"IG {case} ms/it (speed-up)" for case in sizes.switch_timed),
              f"mean PSNR, {len(sizes.switch_seeds)} victims, {sizes.switch_quality} (Δ)", "reconstructions"]
    findings.detail("switches: the attack loop's speed switches", header, rows)
    if "none" not in findings.switches:
        raise SectionFailed("the plain loop itself failed")


SECTIONS: dict[str, Callable[[Findings], None]] = {
    "e2e": e2e, "step": step, "lanes": lanes, "memory": memory, "cells": cells, "switches": switches}


# --------------------------------------------------------------------------- the report


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`OverBudget` in this (main) thread after ``seconds``."""
    def expire(signum, frame):
        raise OverBudget(f"over its budget of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_section(name: str, findings: Findings) -> None:
    budget = findings.sizes.budgets[name]
    print(f"\n== {name} (budget {budget:.0f} s)", flush=True)
    started = time.perf_counter()
    try:
        with time_limit(budget):
            SECTIONS[name](findings)
    except Exception as error:  # one bug must not cost the other sections their GPU minutes
        traceback.print_exc()
        findings.failed.append(name)
        message = " ".join(str(error).split())[:400]
        findings.add(Figure(name, "section", f"**failed**: {type(error).__name__}: {message}"))
    print(f"== {name}: {time.perf_counter() - started:.1f} s", flush=True)


def targets(findings: Findings) -> list[Figure]:
    """The issue's speed-up targets: the best way found for each workload against one at a time."""
    judged = []
    for workload, target in many_attacks.TARGETS.items():
        tried = findings.speedups.get(workload)
        if not tried:
            judged.append(Figure("targets", findings.workload(workload), "not measured", f"≥ {target:.0f}×", "–"))
            continue
        how, best = max(tried, key=lambda t: t[1])
        judged.append(Figure("targets", findings.workload(workload), f"{best:.2f}× ({how})", f"≥ {target:.0f}×",
                             verdict(best >= target)))
    return judged


def suggested_defaults(findings: Findings, device: str, today: str, source: str) -> list[str]:
    """What this measurement supports as defaults, with the rows packing.MEASURED would take."""
    lines = []
    for workload in (TRIALS, CELLS):
        lane = dict(findings.speedups.get(workload, [])).get("stacked lanes")
        if lane is not None:
            row = Measurement(device, workload, round(lane, 2), today, source)
            lines.append(f"- {stacking_pays(device, workload, (row,)).why}; for evalgrid/evaluation/packing.py "
                         f"MEASURED: `{row!r}`")
    for workload, by_k in findings.k_speedups.items():
        k, best = max(by_k.items(), key=lambda item: item[1])
        lines.append(f"- {findings.workload(workload)}: {CELLS_PER_DEVICE} = "
                     + (f"{k} ({best:.2f}× one at a time)" if best >= PAYS_AT else f"1 (no k reached {PAYS_AT}×)"))
    good = [name for name, f in findings.switches.items() if name != "none"
            and abs(f.psnr - findings.switches["none"].psnr) <= gpu_options.EQUALLY_GOOD_DB
            and all(b / s >= PAYS_AT for s, b in zip(f.seconds, findings.switches["none"].seconds))]
    if findings.switches:
        lines.append(f"- speedups: {', '.join(good) or 'none'} (equally good reconstructions and ≥ {PAYS_AT}× "
                     "faster on every timed case)")
    return lines


def describe_device(device: str) -> str:
    if device == "cuda":
        return (f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
                f"cuDNN {torch.backends.cudnn.version()}")
    return f"{cpu_model()} (no GPU: dry run), torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}"


def report(findings: Findings, command: str, wall_s: float) -> str:
    sizes, today = findings.sizes, dt.date.today().isoformat()
    name = device_name(sizes.device)
    figures = findings.figures + targets(findings)
    lines = [f"# benchmarks/gpu.sh: {today}", "",
             f"`{command}` on {describe_device(sizes.device)}; {wall_s:.0f} s wall; "
             f"sections failed: {', '.join(findings.failed) or 'none'}."
             + (" A dry run: toy sizes on the CPU, to check the code; record none of its figures."
                if sizes is DRY else ""), "",
             markdown_table(["section", "figure", "value", "target", "met"],
                            [[f.section, f.what, f.value, f.target, f.met] for f in figures]), "",
             "## Defaults this measurement supports", "",
             *(suggested_defaults(findings, name, today, f"benchmarks/results/gpu-{today}.md") or ["- none measured"]),
             "", "## Each section", "", "\n\n".join(findings.details)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/gpu.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every section on the CPU at the smallest sizes")
    parser.add_argument("--out", type=Path, help="where the table goes [benchmarks/results/gpu-<date>.md; "
                                                 "a dry run writes none]")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.sections.split(",") if n.strip()]
    if unknown := [n for n in names if n not in SECTIONS]:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    sizes = DRY if args.dry_run else FULL
    if sizes.device == "cuda" and not torch.cuda.is_available():
        print(f"benchmarks/gpu.sh needs a CUDA GPU and torch {torch.__version__} sees none; "
              "`bash benchmarks/gpu.sh --dry-run` runs the same code on the CPU.", file=sys.stderr)
        return 2
    if sizes.threads:
        torch.set_num_threads(sizes.threads)
    command = "bash benchmarks/gpu.sh " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        findings = Findings(sizes, Path(workdir))
        for name in names:
            run_section(name, findings)
    text = report(findings, command.strip(), time.perf_counter() - started)
    print("\n" + text)
    out = args.out or (None if args.dry_run else RESULTS / f"gpu-{dt.date.today().isoformat()}"
                       f"{'' if names == list(SECTIONS) else '-' + '-'.join(names)}.md")
    if out is not None:
        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    return 1 if findings.failed else 0


if __name__ == "__main__":
    sys.exit(main())
