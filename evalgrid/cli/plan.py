"""``evalgrid plan``: the cells a grid expands to."""

from __future__ import annotations

import csv
import json
import sys
from operator import attrgetter
from pathlib import Path
from typing import Any

import click

from evalgrid.grid.cell import ChoiceChain, factor_label
from evalgrid.grid import MAX_CELLS
from evalgrid.grid.expand import collector_paused


@click.command("plan")
@click.argument("grid_file", metavar="GRID", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: count the cells already done there.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-cells", type=click.IntRange(min=1), default=MAX_CELLS, show_default=True,
              help="Refuse a grid whose factor lists give more cells, before making any.")
@click.option("--check", is_flag=True,
              help="Also run the checks `run` makes before dispatch: data, weights and checkpoint files, every "
                   "model against its data, every implementation importable (imports torch). Lists every "
                   "missing file after the cells; exit code 2 when any is missing or a setting cannot run.")
def command(grid_file: Path, out_dir: Path | None, fmt: str, max_cells: int, check: bool) -> None:
    """List the cells of GRID: id and factor values. Writes nothing.

    Reads and validates the grid without importing torch; --check adds the checks of files and
    models that `run` makes before it dispatches anything.

    The cells' last line is "N cells" (or "N cells, K already done" with --out); with --format
    csv or json it goes to stderr so that stdout stays machine-readable. With --check, what is
    missing or cannot run follows on stderr, exactly as `run` would refuse with it.

    \b
    Example:
      evalgrid plan grids/quickstart.toml --out runs/quickstart --check
    """
    with collector_paused():  # a grid may have 100,000s of cells
        _plan(grid_file, out_dir, fmt, max_cells, check)


def _plan(grid_file: Path, out_dir: Path | None, fmt: str, max_cells: int, check: bool) -> None:
    from evalgrid.grid import load_grid  # here, not above: `evalgrid plan --help` reads no grid machinery
    from evalgrid.store.layout import OutputDir

    grid = load_grid(grid_file, max_cells)
    columns = ["cell_id", *grid.varied]
    rows = _rows(grid.cells, grid.varied)
    done = OutputDir(out_dir).done_ids() if out_dir else set()
    if fmt == "json":
        click.echo(_json(columns, rows))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        click.echo(_table(columns, rows, done))
    count = f"{len(rows)} cells" + (f", {sum(row[0] in done for row in rows)} already done" if out_dir else "")

    for lines in (_stage_line(grid, out_dir), _prior_lines(grid, out_dir)):
        if lines:
            click.echo(lines, err=fmt != "table")
    if not check and sys.stderr.isatty():  # a hint for a person; scripts read the rows and the count
        click.echo("data, weights, checkpoints and models not checked: add --check (`run` checks them and "
                   "refuses before dispatch when any is missing)", err=True)
    click.echo(count, err=fmt != "table")
    if check:  # after the listing: a machine without the data still sees the whole grid
        from evalgrid.launch.preflight import check_ready

        check_ready(grid)  # the UserError `run` gives: every missing file, and what cannot run


def _rows(cells: tuple, varied: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """(cell id, label of each varied factor) per cell. Built column by column: a grid's cells
    share their values, so each distinct value is labelled once."""
    columns: list[list[Any]] = [[cell.cell_id for cell in cells]]
    for name in varied:
        values = list(map(attrgetter(name), cells))
        labels = {id(value): factor_label(value) for value in {id(v): v for v in values}.values()}
        columns.append(list(map(labels.__getitem__, map(id, values))))
    return list(zip(*columns))


def _stage_line(grid, out_dir: Path | None) -> str:
    """How many FedAvg trainings the grid needs (each trained once, shared by its cells)."""
    from evalgrid.catalogue import STAGES
    from evalgrid.fl.stage import planned_trainings, stage_requests
    from evalgrid.store.layout import OutputDir

    if not any(STAGES[stage.name].trains for stage in grid.values["stage"]):
        return ""  # no stage of the grid trains: no need to look at its cells one by one
    requests = [request for cell in grid.cells for request in stage_requests(cell)]
    if not requests:
        return ""
    cache = grid.stage_cache or (OutputDir(out_dir).stages if out_dir else None)
    planned = planned_trainings(requests, cache) if cache else [(r, False) for r in dict.fromkeys(requests)]
    cached = sum(is_cached for _, is_cached in planned)
    where = f" in {cache}" if cache else " (no cache given: pass --out DIR to count those in DIR/stages)"
    lines = [f"  {'cached ' if is_cached else 'to train'}  {request.stage} of {request.model} on {request.dataset}"
             f"{f' at {request.resolution}px' if request.resolution else ''}, init {request.init}, seed {request.seed}"
             f"{f', defense {ChoiceChain(tuple(request.defense))}' if request.defense else ''}"
             for request, is_cached in planned]
    return "\n".join([*lines, f"{len(planned)} stage trainings, {cached} cached{where}"])


def _prior_lines(grid, out_dir: Path | None) -> str:
    """The adversary priors the grid trains (each once, shared by its cells)."""
    from evalgrid.priors.request import planned_priors, prior_request
    from evalgrid.store.layout import OutputDir

    if all(prior is None for prior in grid.values["prior"]):
        return ""
    cache = grid.stage_cache or (OutputDir(out_dir).stages if out_dir else None)
    planned = planned_priors([prior_request(cell) for cell in grid.cells], cache)
    if not planned:
        return ""
    cached = sum(is_cached for _, is_cached in planned)
    where = f" in {cache}" if cache else " (no cache given: pass --out DIR to count those in DIR/stages)"
    lines = [f"  {'cached ' if is_cached else 'to train'}  {request.describe()}" for request, is_cached in planned]
    return "\n".join([*lines, f"{len(planned)} prior trainings, {cached} cached{where}"])


def _table(columns: list[str], rows: list[tuple[Any, ...]], done: set[str]) -> str:
    if done:
        columns = [*columns, "done"]
        rows = [(*row, "yes" if row[0] in done else "") for row in rows]
    header, cells = [], []  # per column: its padded name, and each row's padded text
    for name, values in zip(columns, zip(*rows)):
        texts = {value: str(value) for value in set(values)}  # a column holds one type: no 1 == True clash
        width = max(len(name), *map(len, texts.values()))
        padded = {value: text.ljust(width) for value, text in texts.items()}
        header.append(name.ljust(width))
        cells.append(map(padded.__getitem__, values))
    return "\n".join(["  ".join(header), *map(str.rstrip, map("  ".join, zip(*cells)))])


def _json(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """``json.dumps([dict(zip(columns, row)) for row in rows], indent=2)``, each distinct value encoded once."""
    keys = [f"    {json.dumps(name)}: " for name in columns]
    encoded = []
    for values in zip(*rows):
        texts = {value: json.dumps(value) for value in set(values)}
        encoded.append(list(map(texts.__getitem__, values)))
    items = ("  {\n" + ",\n".join(map(str.__add__, keys, row)) + "\n  }" for row in zip(*encoded))
    return "[\n" + ",\n".join(items) + "\n]"
