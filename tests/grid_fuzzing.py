"""A seeded mutation fuzzer for grid files. Each case takes one of the repository's coverage
grids (its ``extends`` chain merged into one self-contained file, so every attack, defense,
model, init, stage and metric is in play), damages it and runs ``evalgrid plan`` on it in this
process: validation, expansion and every plan-time check (data, models on the meta device,
inits). The damages are those a hostile or careless user makes: a number set to an extreme
(NaN, ±inf, 0, -1, 10^12, 2^63, 1e308) or to a value of another type, a string emptied, made
huge, given control characters or a path outside the tree, a line deleted, duplicated or moved,
characters inserted, deleted or flipped, and ``extends`` pointed at things that are not grid
files.

A case passes when ``plan`` exits 0, or exits 2 with an error whose first line starts with
``error:`` and names the grid file: the only output of a grid refused when it is read, or after
the cells and their count for one refused by the checks (which list every missing file and each
setting that cannot run, a line each); anything else (a traceback, another exit code, a crash)
is a failure.
``python grid_fuzzing.py CASES SEED`` prints ``grids cases accepted refused`` and the failures,
and exits 1 when there is one. The test runs it in a subprocess, so that a crash fails the test
instead of killing pytest."""

from __future__ import annotations

import random
import re
import sys
import tempfile
from pathlib import Path

import tomli_w
from click.testing import CliRunner

from evalgrid.cli import main
from evalgrid.grid.toml_io import read_grid_toml

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted(p for p in (REPO / "grids" / "coverage").glob("*.toml") if p.name != "base.toml")

NUMBER = re.compile(r"(?<![\w.\"-])-?\d+(\.\d+)?(e[+-]?\d+)?(?![\w.\"])")
STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
NUMBERS = ["nan", "inf", "-inf", "0", "-1", "1000000000000", "9223372036854775807", "-9223372036854775809",
           "1e308", "0.0", "1e-320", '"3"', "true", "[]", "{}", "[1, 2]", "{ a = 1 }", "2.5"]
STRINGS = ['""', '"' + "x" * 5000 + '"', r'"\u001b[2J"', r'"a\u0000b"', '"../../../../etc/passwd"', '"/dev/zero"',
           '"/"', '"."', '"ig"', '"cifar10"', '"fedavg"', '"🙂"', '"\\\\"', "3", "[]", "{ name = \"x\" }"]
EXTENDS = ['extends = "/dev/zero"', 'extends = "/etc/passwd"', 'extends = "."', 'extends = "missing.toml"',
           'extends = "case.toml"', "extends = 3", 'extends = ""']


def self_contained(path: Path) -> str:
    """The grid with its extends chain merged, as TOML text."""
    return tomli_w.dumps(read_grid_toml(path).data)


def mutate(text: str, rng: random.Random) -> str:
    """``text`` with one to three damages."""
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(8)
        lines = text.splitlines()
        if kind <= 1:
            text = _replace_one(text, NUMBER, NUMBERS, rng)
        elif kind == 2:
            text = _replace_one(text, STRING, STRINGS, rng)
        elif kind == 3 and lines:  # delete, duplicate or move a line
            index = rng.randrange(len(lines))
            line = lines.pop(index)
            if rng.random() < 0.5:
                lines.insert(rng.randrange(len(lines) + 1), line)
                if rng.random() < 0.5:
                    lines.insert(index, line)
            text = "\n".join(lines) + "\n"
        elif kind == 4 and text:  # characters inserted, deleted or changed
            position = rng.randrange(len(text))
            change = rng.choice(["", "[", "]", "{", "}", "=", ",", '"', "\n", "#", "\x00", "\x1b", "é", "0"])
            text = text[:position] + change + text[position + rng.randint(0, 2):]
        elif kind == 5 and rng.random() < 0.3:
            text = rng.choice(EXTENDS) + "\n" + text
        elif kind == 6 and lines:  # a value replaced by a table or array of itself
            index = rng.randrange(len(lines))
            if " = " in lines[index]:
                key, value = lines[index].split(" = ", 1)
                lines[index] = f"{key} = {rng.choice([f'[{value}]', f'[{value}, {value}]', f'{{ x = {value} }}'])}"
            text = "\n".join(lines) + "\n"
        else:  # a factor list made long
            text = re.sub(r"^seed = \[.*\]$", f"seed = [{', '.join(map(str, range(rng.randint(50, 400))))}]",
                          text, count=1, flags=re.MULTILINE)
    return text


def _replace_one(text: str, pattern: re.Pattern, choices: list[str], rng: random.Random) -> str:
    matches = list(pattern.finditer(text))
    if not matches:
        return text
    match = rng.choice(matches)
    return text[:match.start()] + rng.choice(choices) + text[match.end():]


def check(grid: Path) -> tuple[int, str | None]:
    """``plan``'s exit code, and None when it accepted or refused the grid as it must, else what went wrong."""
    result = CliRunner().invoke(main, ["plan", str(grid), "--check"])
    output = result.output.strip()
    if result.exit_code == 0:
        return 0, None
    if result.exit_code != 2 or result.exception is not None and not isinstance(result.exception, SystemExit):
        return result.exit_code, f"exit code {result.exit_code}: {result.exception!r}\n{output[-2000:]}"
    lines = output.splitlines()
    first = next((index for index, line in enumerate(lines) if line.startswith("error: ")), None)
    if first is None or "Traceback" in output:
        return 2, f"no line starting with 'error: ': {output[-2000:]}"
    if first > 0 and not re.fullmatch(r"\d+ cells", lines[first - 1]):
        return 2, f"the error follows something else than the cells and their count: {output[-2000:]}"
    if grid.name not in lines[first]:
        return 2, f"the error does not name the grid file: {lines[first][:500]}"
    return 2, None


def main_loop(cases: int, seed: int) -> int:
    rng = random.Random(seed)
    seeds = [self_contained(path) for path in SEEDS]
    counts = {0: 0, 2: 0}
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "case.toml").write_text(seeds[0])  # a valid base for `extends = "case.toml"`
        for case in range(cases):
            text = mutate(rng.choice(seeds), rng)
            grid = Path(folder) / f"fuzzed-{case}.toml"
            grid.write_bytes(text.encode("utf-8", errors="surrogatepass"))
            code, problem = check(grid)
            if problem is None:
                counts[code] += 1
            else:
                failures.append((case, problem, text))
            grid.unlink()
    print(f"grids {cases} {counts[0]} {counts[2]}")
    for case, problem, text in failures[:10]:
        print(f"--- case {case}: {problem}\n{text[:3000]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main_loop(int(sys.argv[1]), int(sys.argv[2])))
