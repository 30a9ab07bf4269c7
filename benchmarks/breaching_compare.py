"""Inverting Gradients: evalgrid next to breaching, the attack library of the paper's first
author (the PyPI package ``breaching``), on the same problem in one process: the same model
object, victim batch, shared gradient tensors, hyperparameters, iterations and starting
images. Prints, per case, the milliseconds per iteration of both (median of interleaved runs),
their ratio evalgrid ÷ breaching (target ≤ 1.0) and the final PSNR of both (evalgrid's should
be at least breaching's: a correctness check as well).

    python benchmarks/breaching_compare.py [--iterations 200] [--psnr-iterations 1000]
                                           [--repeats 5] [--threads 1] [--cases convnet,resnet18]

With the defaults it runs 2 × (5 × 200 + 1,000) iterations per case: about 45 minutes for
both cases on an idle core of an AMD EPYC, longer on a loaded machine.

breaching is never a dependency of evalgrid. Its environment is a pip ``--target`` folder,
``benchmarks/.breaching-env`` (git-ignored), holding only breaching and the pure-Python
packages ``import breaching`` needs (hydra-core, omegaconf, antlr4-python3-runtime, PyYAML;
``benchmarks/requirements-breaching.txt``); torch, torchvision, numpy and scipy are the
project's own. The script installs it with ``pip install --no-deps --target`` when it is
missing or the requirements file changed (a few seconds, from the package index), and puts
it first on ``sys.path`` of this process only. A folder rather than a venv: nothing to
activate, torch is not installed twice, and evalgrid's pyproject is untouched.

Made equal: the model (evalgrid's ``convnet``, Geiping's ConvNet64, and ``resnet18`` with its
CIFAR stem, seeded initialisation, both attacks in eval mode: breaching switches the model to
eval mode when the server's buffers are public, so evalgrid's client and attacker run it in
eval mode too); the victim batch (real photos: scikit-learn's two bundled pictures, whole and
a detail, downsampled to 32×32, normalised with CIFAR-10's statistics); labels known to both;
the shared gradient (computed once, the same tensors handed to both); lr 0.1, TV weight 1e-4,
1 restart, signed (hard sign) Adam, boxed, step decay ×0.1 three times; the number of
iterations; the starting images (evalgrid's N(0, 1) draw, handed to breaching as
``initial_data``); ``torch.set_num_threads``. Timed: one whole ``reconstruct`` call of each
(set-up, the loop and the final scoring of the trial) divided by the iterations; the process's
CPU time is recorded next to the wall time, since it is less disturbed by other load on the
machine. One thread by default: on a shared machine with more runnable threads than cores,
every parallel region of a 2-thread run waits for its slower thread to be scheduled, which
inflated one forward+backward of ResNet-18 tenfold in a trial run and made the ratios noise.

What differs, by design of the two codes: breaching's decay milestones are ⌊n/2.667⌋,
⌊n/1.6⌋, ⌊n/1.142⌋ (74, 125, 175 of 200), evalgrid's ⌊3n/8⌋, ⌊5n/8⌋, ⌊7n/8⌋ (75, 125, 175);
breaching's TV is a convolution with zero padding, so it also counts the jump from the
border pixels to 0, plus 1e-8 per difference, where evalgrid's (inversefed's) counts inner
differences only; breaching returns the iterate that followed its lowest objective (TV
included), evalgrid the last iterate.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timing, format_seconds, markdown_table, repeat, section  # noqa: E402

from evalgrid.catalogue import ATTACKS  # noqa: E402
from evalgrid.attacks.base import dummy_images  # noqa: E402
from evalgrid.data.base import DatasetInfo  # noqa: E402
from evalgrid.data.cifar import CIFAR10  # noqa: E402
from evalgrid.fl.objective import loss_gradients  # noqa: E402
from evalgrid.metrics.scoring import score  # noqa: E402
from evalgrid.catalogue import MODELS  # noqa: E402
from evalgrid.catalogue.options import parse_options  # noqa: E402
from evalgrid.fl.threat_model import ClientData, ServerView, SharedUpdate  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parent
ENV_DIR = BENCHMARKS / ".breaching-env"
REQUIREMENTS = BENCHMARKS / "requirements-breaching.txt"
INSTALLED_FROM = ENV_DIR / "requirements-breaching.txt"  # copy of the file the folder was installed from

SIDE = 32
NORMALIZATION = CIFAR10.normalization
INFO = DatasetInfo("sklearn-photos", channels=3, resolution=SIDE, num_classes=10, normalization=NORMALIZATION)
LR, TV = 0.1, 1e-4  # IG's CIFAR-10 setting in both codes (breaching's config has TV 0.2; set to 1e-4 here)
SEED = 0


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    batch_size: int


CASES = {
    "convnet": Case("ConvNet64, batch 1", "convnet", 1),
    "resnet18": Case("ResNet-18 (CIFAR stem), batch 4", "resnet18", 4),
}


# --- breaching's environment -------------------------------------------------------------

def install_breaching() -> None:
    """Install the requirements file into ENV_DIR unless it already holds exactly that file's pins."""
    if INSTALLED_FROM.exists() and INSTALLED_FROM.read_text() == REQUIREMENTS.read_text():
        return
    print(f"breaching_compare: installing breaching into {ENV_DIR.relative_to(BENCHMARKS.parent)} "
          f"(pip install --no-deps --target, pins from {REQUIREMENTS.name}); this happens once...",
          file=sys.stderr)
    shutil.rmtree(ENV_DIR, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(ENV_DIR), "-r", str(REQUIREMENTS)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(ENV_DIR, ignore_errors=True)
        raise SystemExit(f"breaching_compare: could not install breaching's environment (pip exited "
                         f"{done.returncode}); it needs pip in {sys.executable} and access to the package "
                         f"index:\n{done.stderr[-3000:]}")
    shutil.copyfile(REQUIREMENTS, INSTALLED_FROM)
    print(f"breaching_compare: installed in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def import_breaching() -> ModuleType:
    install_breaching()
    sys.path.insert(0, str(ENV_DIR))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated; breaching scripts its objectives
        import breaching
    return breaching


# --- the problem -------------------------------------------------------------------------

def victim_photos(batch_size: int) -> Tensor:
    """Up to four real 32×32 colour images in [0, 1]: scikit-learn's bundled china.jpg and
    flower.jpg, each whole (its central square) and as a detail (a centred crop of half the
    height), downsampled with antialiasing."""
    from sklearn.datasets import load_sample_images

    photos = [torch.tensor(p).permute(2, 0, 1).float() / 255 for p in load_sample_images().images]
    crops = []
    for half in (False, True):
        for photo in photos:
            _, height, width = photo.shape
            side = height // 2 if half else height
            top, left = (height - side) // 2, (width - side) // 2
            crops.append(photo[:, top:top + side, left:left + side])
    if batch_size > len(crops):
        raise SystemExit(f"only {len(crops)} victim images are available, asked for {batch_size}")
    small = [F.interpolate(c[None], size=(SIDE, SIDE), mode="bilinear", antialias=True, align_corners=False)
             for c in crops[:batch_size]]
    return torch.cat(small).clamp(0, 1)


@dataclass(frozen=True, eq=False)
class Problem:
    model: nn.Module  # in eval mode, shared by both attacks
    pixels: Tensor
    labels: Tensor
    gradients: tuple[Tensor, ...]  # the client's FedSGD gradient, computed once
    start: Tensor  # the first dummy batch, in input space


def make_problem(case: Case) -> Problem:
    torch.manual_seed(SEED)
    component = MODELS[case.model]
    model = component.build(component.options(), INFO).eval()
    pixels = victim_photos(case.batch_size)
    labels = torch.arange(case.batch_size) % INFO.num_classes
    gradients = tuple(g.detach() for g in loss_gradients(model, NORMALIZATION.normalize(pixels), labels))
    start = dummy_images("randn", evalgrid_view(model, gradients, labels), torch.Generator().manual_seed(SEED))
    return Problem(model, pixels, labels, gradients, start)


def evalgrid_view(model: nn.Module, gradients: tuple[Tensor, ...], labels: Tensor) -> ServerView:
    return ServerView(model=model, update=SharedUpdate(gradients, len(labels)), data_shape=(3, SIDE, SIDE),
                      num_classes=INFO.num_classes, normalization=NORMALIZATION, known_labels=labels)


def psnr(problem: Problem, reconstruction: Tensor) -> float:
    """evalgrid's PSNR of the reconstructions matched to the originals (order-independent)."""
    pixels = NORMALIZATION.denormalize(reconstruction.detach()).clamp(0, 1)
    scores = score(ClientData(problem.pixels, problem.labels), pixels, problem.labels, True, ["psnr"])
    return scores.values["psnr"].mean


# --- the two attacks, each prepared for a number of iterations, then run from the start ----

class EvalgridIG:
    """evalgrid's Inverting Gradients through its public registry, on a ServerView of the problem."""

    def __init__(self, problem: Problem):
        self.view = evalgrid_view(problem.model, problem.gradients, problem.labels)
        self.component = ATTACKS["ig"]
        self.attacks = {}
        start = self.component.build(self.component.options()).start(self.view, torch.Generator().manual_seed(SEED))
        assert torch.equal(start.starts[0], problem.start), "evalgrid's start differs from the one handed to breaching"

    def prepare(self, iterations: int) -> None:
        options = parse_options(self.component.options, dict(
            iterations=iterations, lr=LR, tv=TV, restarts=1, signed=True, boxed=True, lr_decay=True, init="randn"))
        self.attacks[iterations] = self.component.build(options)

    def run(self, iterations: int) -> Tensor:
        return self.attacks[iterations].reconstruct(self.view, torch.Generator().manual_seed(SEED)).images


class BreachingIG:
    """breaching's own optimisation-based attacker with its 'invertinggradients' preset, driven
    the way its ``cases`` drive it: a server payload (parameters, public buffers, metadata) and
    the user's shared data (gradients, labels, number of samples). It deep-copies the model it
    is given, as its server would."""

    def __init__(self, breaching: ModuleType, problem: Problem):
        self.breaching, self.problem = breaching, problem
        metadata = SimpleNamespace(shape=(3, SIDE, SIDE), mean=NORMALIZATION.mean, std=NORMALIZATION.std,
                                   modality="vision")
        self.payload = [dict(parameters=list(problem.model.parameters()), buffers=list(problem.model.buffers()),
                             metadata=metadata)]
        self.attackers = {}

    def prepare(self, iterations: int) -> None:
        overrides = [f"optim.max_iterations={iterations}", f"optim.step_size={LR}",
                     f"regularization.total_variation.scale={TV}", "restarts.num_trials=1",
                     "optim.signed=hard", "optim.boxed=True", "optim.step_size_decay=step-lr", "init=randn"]
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")  # hydra's version_base notice
            config = self.breaching.get_attack_config("invertinggradients", overrides=overrides)
        self.attackers[iterations] = self.breaching.attacks.prepare_attack(
            self.problem.model, nn.CrossEntropyLoss(), config, setup=dict(dtype=torch.float, device=torch.device("cpu")))

    def run(self, iterations: int) -> Tensor:
        problem = self.problem
        shared = [dict(gradients=list(problem.gradients), buffers=None,
                       metadata=dict(num_data_points=len(problem.labels), labels=problem.labels,
                                     local_hyperparams=None))]
        reconstructed, _ = self.attackers[iterations].reconstruct(self.payload, shared, {}, initial_data=problem.start)
        return reconstructed["data"]


# --- measuring ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    wall: dict[str, Timing]  # by code, seconds per iteration
    cpu: dict[str, Timing]  # the process's CPU seconds per iteration (all threads)
    paired_ratios: tuple[float, ...]  # evalgrid ÷ breaching wall, per round
    psnr: dict[str, float]  # after the timed runs' iterations
    long_psnr: dict[str, float]  # after --psnr-iterations (empty when 0)
    forward_backward: Timing


def measure(problem: Problem, codes: dict, iterations: int, psnr_iterations: int, repeats: int) -> Measured:
    """Warm up each code on a short run, then time ``repeats`` whole runs of each, interleaved
    (the order alternating every round, so that a drift of the machine hits both alike)."""
    warmup = 8
    for code in codes.values():
        for count in (warmup, iterations, psnr_iterations):
            if count:
                code.prepare(count)
        code.run(warmup)
    wall: dict[str, list[float]] = {name: [] for name in codes}
    cpu: dict[str, list[float]] = {name: [] for name in codes}
    final: dict[str, Tensor] = {}
    names = list(codes)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            started, started_cpu = time.perf_counter(), time.process_time()
            final[name] = codes[name].run(iterations)
            wall[name].append((time.perf_counter() - started) / iterations)
            cpu[name].append((time.process_time() - started_cpu) / iterations)
    long_psnr = {name: psnr(problem, codes[name].run(psnr_iterations)) for name in names} if psnr_iterations else {}
    inputs = NORMALIZATION.normalize(problem.pixels)
    forward_backward = repeat(lambda: loss_gradients(problem.model, inputs, problem.labels), max(repeats, 5))
    return Measured({name: Timing(tuple(wall[name])) for name in names},
                    {name: Timing(tuple(cpu[name])) for name in names},
                    tuple(a / b for a, b in zip(wall["evalgrid"], wall["breaching"])),
                    {name: psnr(problem, final[name]) for name in names}, long_psnr, forward_backward)


def psnr_cell(values: dict[str, float]) -> str:
    """'evalgrid / breaching dB, difference': the verdict is on the difference rounded to 0.01 dB."""
    difference = round(values["evalgrid"] - values["breaching"], 2) + 0.0  # + 0.0: no "-0.00"
    verdict = "yes" if difference >= 0 else "**no**"
    return f"{values['evalgrid']:.2f} / {values['breaching']:.2f} dB ({difference:+.2f}: {verdict})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="iterations of every timed run")
    parser.add_argument("--psnr-iterations", type=int, default=1000,
                        help="iterations of one further run of each code, for PSNR only (0: skip)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each code (at least 5 for the README)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads, the same for both codes (default 1: see the docstring)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    breaching = import_breaching()
    version = importlib.metadata.version("breaching")

    rows = []
    for key in args.cases.split(","):
        case = CASES[key]
        problem = make_problem(case)
        codes = {"evalgrid": EvalgridIG(problem), "breaching": BreachingIG(breaching, problem)}
        measured = measure(problem, codes, args.iterations, args.psnr_iterations, args.repeats)
        ours, theirs = measured.wall["evalgrid"], measured.wall["breaching"]
        scale = measured.forward_backward.median
        cpu_ratio = measured.cpu["evalgrid"].median / measured.cpu["breaching"].median
        rows.append([
            case.name, format_seconds(scale),
            f"{ours} = {ours.median / scale:.1f}× f+b", f"{theirs} = {theirs.median / scale:.1f}× f+b",
            f"**{ours.median / theirs.median:.2f}** ({min(measured.paired_ratios):.2f}–"
            f"{max(measured.paired_ratios):.2f})", f"{cpu_ratio:.2f}",
            psnr_cell(measured.psnr),
            *([psnr_cell(measured.long_psnr)] if measured.long_psnr else []),
        ])
        print(f"breaching_compare: {case.name} done", file=sys.stderr)

    header = ["case", "forward+backward (f+b)", "evalgrid / iteration", f"breaching {version} / iteration",
              "evalgrid ÷ breaching (target ≤ 1.0)", "same, CPU time",
              f"PSNR after {args.iterations} it., evalgrid / breaching (evalgrid ≥?)",
              *([f"PSNR after {args.psnr_iterations} it., evalgrid / breaching (evalgrid ≥?)"]
                if args.psnr_iterations else [])]
    command = f"python benchmarks/breaching_compare.py --iterations {args.iterations} " \
              f"--psnr-iterations {args.psnr_iterations} --repeats {args.repeats} --threads {args.threads}"
    further = f"; after {args.psnr_iterations} iterations, one further run of each" if args.psnr_iterations else ""
    body = f"""
Inverting Gradients in evalgrid and in breaching {version} (its `invertinggradients` preset run by
its own optimisation-based attacker) on the same model object, victim batch, shared gradient
tensors and starting images, with lr {LR}, TV {TV:g}, 1 restart, signed Adam, boxed, step decay,
{args.threads} torch thread{'s' if args.threads != 1 else ''} for both. Time per iteration: one whole
`reconstruct` call of {args.iterations} iterations ÷ {args.iterations}; median of {args.repeats} runs of each code,
interleaved, range in brackets; the ratio is of the medians, in brackets the range of the ratios
of the runs paired by round; "same, CPU time" is the ratio of the process's CPU time (all
threads), which other load on the machine disturbs less than wall time. f+b: one forward and
backward pass of the model on the batch, for scale. PSNR: evalgrid's metric, reconstructions
matched to the originals{further}.

{markdown_table(header, rows)}

Made equal: evalgrid's `convnet` (ConvNet64) and `resnet18` (CIFAR stem) at 32×32 with one
seeded initialisation, in eval mode for the client and both attackers (breaching puts the
model in eval mode when the server's buffers are public); scikit-learn's two bundled photos,
whole and a detail, downsampled to 32×32, CIFAR-10 normalisation, labels known to both; the
gradient computed once and handed to both; evalgrid's N(0, 1) start handed to breaching as
`initial_data`. Differs, by design of the two codes: the decay milestones (breaching ⌊n/2.667⌋,
⌊n/1.6⌋, ⌊n/1.142⌋; evalgrid ⌊3n/8⌋, ⌊5n/8⌋, ⌊7n/8⌋: one step apart at the first); breaching's
TV also counts the step from the border pixels to the zero padding; breaching returns the
iterate after its lowest objective, evalgrid the last one.
"""
    print(section("Inverting Gradients next to breaching", command, body))


if __name__ == "__main__":
    main()
