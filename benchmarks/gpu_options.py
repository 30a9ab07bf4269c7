"""The attack loop's speed switches (evalgrid/evaluation/speedups.py) and torch.compile, measured on
Inverting Gradients: time per iteration against the plain loop, and whether the
reconstructions stay equally good — mean PSNR over a fixed set of victims within 0.1 dB of the
plain loop's — which is the bar for turning a switch on by default.

    python benchmarks/gpu_options.py [--repeats 5] [--steps 3] [--iterations 100] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, section  # noqa: E402
from problems import Case, build_attack, problem, synchronize  # noqa: E402

from evalgrid.evaluation.speedups import SPEEDUPS, speedups  # noqa: E402

VARIANTS = ("none", *SPEEDUPS, "compile")
TIMED = (Case("convnet", 8), Case("resnet18", 4))
QUALITY = Case("convnet", 1)
QUALITY_SEEDS = (0, 1, 2)  # the fixed set: ConvNet64 batch 1 on three victims
EQUALLY_GOOD_DB = 0.1  # a switch's mean PSNR within this of the plain loop's: equally good reconstructions


def run_steps(variant: str, case: Case, seed: int, device: str, iterations: int, timed_steps: int = 0,
              repeats: int = 0):
    """(seconds per iteration or None, final PSNR) of IG under ``variant``."""
    p = problem(case, seed, device)  # the view holds the attacker's own copy of the model
    view = dataclasses.replace(p.view, model=torch.compile(p.view.model)) if variant == "compile" else p.view
    switches = () if variant in ("none", "compile") else (variant,)
    attack = build_attack("ig", iterations=iterations)
    with speedups(switches, view.model):
        state = attack.start(view, torch.Generator().manual_seed(seed))
        per_iteration = None
        if timed_steps:
            attack.step(view, state)  # warm-up (and compilation)
            blocks = []
            for _ in range(repeats):
                synchronize(device)
                started = time.perf_counter()
                for _ in range(timed_steps):
                    attack.step(view, state)
                synchronize(device)
                blocks.append((time.perf_counter() - started) / timed_steps)
            per_iteration = statistics.median(blocks)
            return per_iteration, None
        while not attack.done(state):
            attack.step(view, state)
        result = attack.result(view, state)
    pixels = view.normalization.denormalize(result.images.float()).clamp(0, 1)
    return None, 10 * math.log10(1 / (pixels - p.pixels).square().mean().item())


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:140] if text else ''}"


@dataclass(frozen=True)
class SwitchFigures:
    """One variant's seconds per iteration on each timed case and its mean PSNR on the quality set."""

    variant: str
    seconds: tuple[float, ...]
    psnr: float


def not_measured(variant: str, device: str) -> str | None:
    """Why ``variant`` is not measured on ``device``; None when it is."""
    if variant == "fp16" and device == "cpu":
        return "not measured: float16 kernels on the CPU are too slow to matter (a CUDA switch)"
    return None


def measure_switch(variant: str, timed: tuple[Case, ...], quality: Case, seeds: tuple[int, ...], iterations: int,
                   steps: int, repeats: int, device: str) -> SwitchFigures:
    seconds = tuple(run_steps(variant, case, 0, device, 10**6, steps, repeats)[0] for case in timed)
    psnr = statistics.mean(run_steps(variant, quality, seed, device, iterations)[1] for seed in seeds)
    return SwitchFigures(variant, seconds, psnr)


def switch_rows(variants: tuple[str, ...], timed: tuple[Case, ...], quality: Case, seeds: tuple[int, ...],
                iterations: int, steps: int, repeats: int,
                device: str) -> tuple[list[list[str]], dict[str, SwitchFigures]]:
    """The table's rows, each variant against the first one measured (the plain loop), and the
    figures of every variant measured; a variant the device or torch refuses is a row saying so."""
    rows, measured = [], {}
    for variant in variants:
        reason = not_measured(variant, device)
        try:
            if reason is None:
                measured[variant] = measure_switch(variant, timed, quality, seeds, iterations, steps, repeats, device)
        except Exception as error:  # a switch the device or torch refuses is a finding, not a crash
            reason = f"fails: {first_line(error)}"
        if reason is None:
            baseline = next(iter(measured.values()))
            delta = measured[variant].psnr - baseline.psnr
            rows.append([variant, *(f"{s * 1e3:.0f} ms ({b / s:.2f}×)" for s, b in
                                    zip(measured[variant].seconds, baseline.seconds)),
                         f"{measured[variant].psnr:.2f} dB ({delta:+.2f})",
                         "equally good" if abs(delta) <= EQUALLY_GOOD_DB else "**differs**"])
        else:
            rows.append([variant, *["–"] * len(timed), "–", reason])
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows, measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="iterations per timed block")
    parser.add_argument("--iterations", type=int, default=100, help="iterations of each quality run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, _ = switch_rows(VARIANTS, TIMED, QUALITY, QUALITY_SEEDS, args.iterations, args.steps, args.repeats,
                          args.device)
    header = ["switch", *(f"IG {case} ms/it (speed-up)" for case in TIMED),
              f"mean PSNR, {len(QUALITY_SEEDS)} victims (Δ)", "reconstructions"]
    body = markdown_table(header, rows)
    body += (f"\n\nDevice {args.device}. Time per iteration: median of {args.repeats} blocks of {args.steps}. "
             f"Quality: IG on ConvNet64 batch 1, {args.iterations} iterations, victims {QUALITY_SEEDS}; "
             "'equally good' means the mean PSNR is within 0.1 dB of the plain loop's. A switch is on by default "
             "only when it is equally good and faster on the GPU it was measured on; none is on by default.")
    print(section("gpu_options.py: speed switches of the attack loop",
                  "python benchmarks/gpu_options.py " + " ".join(sys.argv[1:]), body))


if __name__ == "__main__":
    main()
