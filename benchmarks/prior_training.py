"""Prior training times: the smoke grids' DCGAN (GIA-L) and ROG refiner, each trained into a
fresh cache through the prior cache (the code a cell runs), on 16x16 digits' test split.

    python benchmarks/prior_training.py [--repeats 1] [--paper]

``--paper`` also trains one epoch of each at the paper preset (width 64) on the same digits,
to show the per-epoch cost of the full-size networks. Prints a Markdown table of wall seconds
and the final losses; the first training in a process includes torch's warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, section  # noqa: E402

from evalgrid.catalogue import PRIORS  # noqa: E402
from evalgrid.catalogue.options import parse_options  # noqa: E402
from evalgrid.data.options import DigitsOptions  # noqa: E402
from evalgrid.grid.cell import Choice  # noqa: E402
from evalgrid.priors.cache import prior_network  # noqa: E402
from evalgrid.priors.request import META_FILE, PriorRequest  # noqa: E402

SMOKE = {"dcgan": {"epochs": 100, "width": 32}, "rog_refiner": {"epochs": 30, "width": 16}}
PAPER_ONE_EPOCH = {"dcgan": {"epochs": 1}, "rog_refiner": {"epochs": 1}}


def train_once(name: str, options: dict, cache: Path) -> tuple[float, dict]:
    prior = Choice(name, parse_options(PRIORS[name].options, options))
    request = PriorRequest(prior, Choice("digits", DigitsOptions(resolution=16)), 0)
    started = time.perf_counter()
    prior_network(request, None, cache, "cpu")
    wall = time.perf_counter() - started
    meta = json.loads((request.folder(cache) / META_FILE).read_text())
    return wall, meta["summary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--paper", action="store_true")
    args = parser.parse_args()
    settings = [(name, "smoke", options) for name, options in SMOKE.items()]
    if args.paper:
        settings += [(name, "preset, 1 epoch", options) for name, options in PAPER_ONE_EPOCH.items()]
    rows = []
    for name, label, options in settings:
        walls, summary = [], {}
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as folder:
                wall, summary = train_once(name, options, Path(folder))
                walls.append(wall)
        losses = {k: v for k, v in summary.items() if k not in ("epochs", "images")}
        rows.append([name, label, json.dumps(options), str(summary.get("images")), f"{min(walls):.1f}",
                     json.dumps(losses)])
    table = markdown_table(["prior", "setting", "options", "images", "wall s (best)", "final losses"], rows)
    print(section("prior_training.py: training the adversary's priors", "python benchmarks/prior_training.py",
                  table))


if __name__ == "__main__":
    main()
