"""One attack iteration of evalgrid against a minimal hand-written loop of the same maths.

For Inverting Gradients and FedLeak on ConvNet64 (batch 1 and 8) and ResNet-18 (batch 4) at
32×32, this times evalgrid's ``attack.step`` and a loop written here in as few lines as the
maths allows (forward, gradients with create_graph, the distance, TV, backward, Adam on the
signed gradient, clamp; FedLeak adds its mask, the activation penalty read by hooks on the
same forward pass, and the look-ahead blend), on the same model, gradient and start. Prints
milliseconds per iteration (median of REPEATS blocks of STEPS iterations, evalgrid and the
minimal loop interleaved) and their ratio (target: ≤ 1.1), plus one forward+backward of the
model for scale.

    python benchmarks/attack_step.py [--repeats 5] [--steps 10] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, section  # noqa: E402
from problems import CASES, Problem, build_attack, problem, seconds_per_step  # noqa: E402

from evalgrid.attacks.fedleak import ACTIVATIONS  # noqa: E402


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., :, :-1] - x[..., :, 1:]).abs().mean() + (x[..., :-1, :] - x[..., 1:, :]).abs().mean()


class MinimalInvertingGradients:
    """Signed Adam on 1 − cos(∇W', ∇W) + tv·TV, clamped into the pixel box."""

    def __init__(self, p: Problem, lr: float = 0.1, tv: float = 1e-4):
        self.model, self.labels, self.tv = p.view.model, p.labels, tv
        self.params = [w for w in self.model.parameters() if w.requires_grad]
        self.target = torch.cat([g.reshape(-1) for g in p.view.update.gradients])
        self.target_norm = self.target.norm()
        self.x = torch.randn(p.pixels.shape, device=p.pixels.device).requires_grad_(True)
        self.low, self.high = p.view.normalization.pixel_box(self.x)
        self.optimizer = torch.optim.Adam([self.x], lr=lr)

    def step(self) -> None:
        loss = F.cross_entropy(self.model(self.x), self.labels)
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        objective = 1 - flat @ self.target / (flat.norm() * self.target_norm) + self.tv * total_variation(self.x)
        (self.x.grad,) = torch.autograd.grad(objective, [self.x])
        self.x.grad.sign_()
        self.optimizer.step()
        with torch.no_grad():
            self.x.clamp_(self.low, self.high)


class MinimalFedLeak:
    """Adam on ‖g'[Λ] − g[Λ]‖₁ + 1 − cos + α·TV + β·Σ‖F_l‖₁ with the look-ahead blend, clamped."""

    def __init__(self, p: Problem, lr: float = 0.1, keep: float = 0.5, tv: float = 1e-4, beta: float = 1e-4,
                 blend: float = 0.5, lookahead: float = 0.1):
        self.model, self.labels = p.view.model, p.labels
        self.tv, self.beta, self.blend, self.lookahead = tv, beta, blend, lookahead
        self.params = [w for w in self.model.parameters() if w.requires_grad]
        target = torch.cat([g.reshape(-1) for g in p.view.update.gradients])
        self.mask = torch.topk(target.abs(), round(keep * target.numel())).indices.sort().values
        self.target = target[self.mask]
        self.activations: list[torch.Tensor] = []
        for module in self.model.modules():
            if isinstance(module, ACTIVATIONS):
                module.register_forward_hook(lambda m, i, out: self.activations.append(out.abs().sum()))
        self.x = torch.randn(p.pixels.shape, device=p.pixels.device).requires_grad_(True)
        self.low, self.high = p.view.normalization.pixel_box(self.x)
        self.optimizer = torch.optim.Adam([self.x], lr=lr)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        self.activations.clear()
        loss = F.cross_entropy(self.model(x), self.labels)
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        a = torch.cat([g.reshape(-1) for g in grads])[self.mask]
        objective = ((a - self.target).abs().sum() + 1 - a @ self.target / (a.norm() * self.target.norm())
                     + self.tv * total_variation(x) + self.beta * sum(self.activations))
        return torch.autograd.grad(objective, [x])[0]

    def step(self) -> None:
        gradient = self.gradient(self.x)
        with torch.no_grad():
            ahead = (self.x - gradient * (self.lookahead * math.sqrt(gradient.numel()) / gradient.norm()))
            ahead = torch.max(torch.min(ahead, self.high), self.low)
        gradient = (1 - self.blend) * gradient + self.blend * self.gradient(ahead.requires_grad_(True))
        self.x.grad = gradient
        self.optimizer.step()
        with torch.no_grad():
            self.x.clamp_(self.low, self.high)


MINIMAL = {"ig": MinimalInvertingGradients, "fedleak": MinimalFedLeak}
ATTACK_OPTIONS = {"ig": {"iterations": 10**6, "lr_decay": True}, "fedleak": {"iterations": 10**6}}


def forward_backward(p: Problem, device: str, steps: int) -> float:
    model, x = p.view.model, p.view.normalization.normalize(p.pixels)
    params = [w for w in model.parameters() if w.requires_grad]

    def once():
        torch.autograd.grad(F.cross_entropy(model(x), p.labels), params)

    once()
    return seconds_per_step(once, steps, device)


def measure(attack_name: str, case, repeats: int, steps: int, device: str) -> dict:
    torch.manual_seed(0)
    p = problem(case, device=device)
    attack = build_attack(attack_name, **ATTACK_OPTIONS[attack_name])
    state = attack.start(p.view, torch.Generator().manual_seed(0))
    minimal = MINIMAL[attack_name](problem(case, device=device))
    ours, theirs = [], []
    for block in range(repeats + 1):  # the first block warms up both
        a = seconds_per_step(lambda: attack.step(p.view, state), steps, device)
        b = seconds_per_step(minimal.step, steps, device)
        if block:
            ours.append(a)
            theirs.append(b)
    ours.sort()
    theirs.sort()
    median = lambda values: values[len(values) // 2]  # noqa: E731
    return {"evalgrid": median(ours), "minimal": median(theirs),
            "forward_backward": forward_backward(p, device, steps)}


TARGET_RATIO = 1.1  # evalgrid's step may take at most this many times the minimal loop's
STEP_HEADER = ["attack", "model, batch", "evalgrid ms/it", "minimal loop ms/it", "ratio", f"≤ {TARGET_RATIO}",
               "× one fwd+bwd"]


def step_row(attack_name: str, case, m: dict) -> list[str]:
    """A row of STEP_HEADER from :func:`measure`'s figures."""
    ratio = m["evalgrid"] / m["minimal"]
    return [attack_name, str(case), f"{m['evalgrid'] * 1e3:.2f}", f"{m['minimal'] * 1e3:.2f}", f"**{ratio:.2f}**",
            "yes" if ratio <= TARGET_RATIO else "no", f"{m['evalgrid'] / m['forward_backward']:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="iterations per timed block")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for attack_name in MINIMAL:
        for case in CASES:
            rows.append(step_row(attack_name, case, measure(attack_name, case, args.repeats, args.steps, args.device)))
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    body = markdown_table(STEP_HEADER, rows)
    body += (f"\n\nDevice {args.device}; median of {args.repeats} blocks of {args.steps} iterations each, "
             "evalgrid and the minimal loop interleaved; 32×32 RGB, FedSGD, BatchNorm in train mode, labels known.")
    print(section("attack_step.py: one attack iteration against a minimal loop",
                  "python benchmarks/attack_step.py " + " ".join(sys.argv[1:]), body))


if __name__ == "__main__":
    main()
