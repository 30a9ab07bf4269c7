"""``evalgrid plan``: the cells a grid expands to."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from evalgrid.cell import ChoiceChain
from evalgrid.grid import load_grid
from evalgrid.preflight import check_ready
from evalgrid.store.layout import OutputDir


@click.command("plan")
@click.argument("grid_file", metavar="GRID", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: count the cells already done there.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def command(grid_file: Path, out_dir: Path | None, fmt: str) -> None:
    """List the cells of GRID: id and factor values. Writes nothing.

    The last line is "N cells" (or "N cells, K already done" with --out); with --format csv or
    json it goes to stderr so that stdout stays machine-readable.

    \b
    Example:
      evalgrid plan grids/quickstart.toml --out runs/quickstart
    """
    grid = load_grid(grid_file)
    check_ready(grid)
    columns = ["cell_id", *grid.varied]
    rows = [{"cell_id": cell.cell_id, **{k: cell.factor_labels()[k] for k in grid.varied}} for cell in grid.cells]
    done = OutputDir(out_dir).done_ids() if out_dir else set()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        click.echo(_table(columns, rows, done))
    count = f"{len(rows)} cells" + (f", {sum(r['cell_id'] in done for r in rows)} already done" if out_dir else "")
    stages = _stage_line(grid, out_dir)
    if stages:
        click.echo(stages, err=fmt != "table")
    click.echo(count, err=fmt != "table")


def _stage_line(grid, out_dir: Path | None) -> str:
    """How many FedAvg trainings the grid needs (each trained once, shared by its cells)."""
    from evalgrid.fl.stage import planned_trainings, stage_requests

    requests = [request for cell in grid.cells for request in stage_requests(cell, grid.base_dir)]
    if not requests:
        return ""
    cache = grid.stage_cache or (out_dir / "stages" if out_dir else None)
    planned = planned_trainings(requests, cache) if cache else [(r, False) for r in dict.fromkeys(requests)]
    cached = sum(is_cached for _, is_cached in planned)
    where = f" in {cache}" if cache else " (no cache given: pass --out DIR to count those in DIR/stages)"
    lines = [f"  {'cached ' if is_cached else 'to train'}  {request.stage} of {request.model} on {request.dataset}"
             f"{f' at {request.resolution}px' if request.resolution else ''}, init {request.init}, seed {request.seed}"
             f"{f', defense {ChoiceChain(tuple(request.defense))}' if request.defense else ''}"
             for request, is_cached in planned]
    return "\n".join([*lines, f"{len(planned)} stage trainings, {cached} cached{where}"])


def _table(columns: list[str], rows: list[dict], done: set[str]) -> str:
    if done:
        columns = [*columns, "done"]
        rows = [{**row, "done": "yes" if row["cell_id"] in done else ""} for row in rows]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)
