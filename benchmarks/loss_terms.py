"""Each term of the attacks' objectives, at the first step and at the returned images, as a cell
records it (the `loss_terms` column): shows a term too small to matter or one that swamps the
rest. Runs one small grid through the CLI: ResNet-10 on 32x32 crops of the shipped photos, FedSGD,
FedLeak at batch 8 and GradInversion at batch 32 (the settings issue 14 measured), a few steps.

    python benchmarks/loss_terms.py [--out runs/loss-terms] [--iterations 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

GRID = """name = "loss-terms"
description = "Loss-term magnitudes: FedLeak (B = 8) and GradInversion (B = 32) on ResNet-10, 32x32 photo crops."
metrics = ["psnr"]

[factors]
dataset = [{{ name = "photos", resolution = 32 }}]
model = ["resnet10"]
local_training = [{{ name = "fedsgd", share_bn_statistics = true }}]
attack = ["fedleak", "gradinversion", {{ name = "fedleak", distance = "cosine" }}]
batch_size = [8, 32]
labels = ["known"]
seed = [0]

[attacks.fedleak]
iterations = {iterations}

[attacks.gradinversion]
iterations = {iterations}
restarts = 1

[[exclude]]
attack = "fedleak"
batch_size = 32

[[exclude]]
attack = "gradinversion"
batch_size = 8

[run]
workers = 1
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/loss-terms"))
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    grid = args.out.parent / f"{args.out.name}.toml"
    grid.write_text(GRID.format(iterations=args.iterations))
    subprocess.run([sys.executable, "-m", "evalgrid", "run", str(grid), "--out", str(args.out)], check=True,
                   capture_output=True)
    import evalgrid

    frame = evalgrid.load(args.out)
    print(f"| attack | B | term | first step | after {args.iterations} steps |")
    print("|---|---|---|---|---|")
    for _, row in frame[frame.status == "done"].iterrows():
        for term, (first, last) in json.loads(row["loss_terms"]).items():
            print(f"| {row['attack']} | {row['batch_size']} | {term} | {first:.4g} | {last:.4g} |")


if __name__ == "__main__":
    main()
