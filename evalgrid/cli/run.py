"""``evalgrid run``: run the cells not done yet."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evalgrid.cli.summary import results_summary
from evalgrid.executors import EXECUTORS
from evalgrid.grid import load_grid
from evalgrid.progress import Progress, format_duration
from evalgrid.runner import RunSettings, run_grid
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import collect


@click.command("run")
@click.argument("grid_file", metavar="GRID", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (created; a second run resumes it).")
@click.option("--executor", type=click.Choice(EXECUTORS.names()), help="Where cells run [grid's run.executor].")
@click.option("--workers", type=click.IntRange(min=1), help="Cells run at once [grid's run.workers].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="[grid's run.device]")
@click.option("--threads", type=click.IntRange(min=0), help="Torch threads per worker; 0: cores / workers.")
def command(grid_file: Path, out_dir: Path, executor: str | None, workers: int | None, device: str | None,
            threads: int | None) -> None:
    """Run every cell of GRID that has no result in DIR yet, then collect DIR/results.parquet.

    A failing cell is recorded (status failed, with its error) and the others go on. Exit code 0
    when every cell is done, 1 when some failed, 2 for usage errors, 130 when interrupted
    (finished cells stay; run the same command again to resume).

    \b
    Example:
      evalgrid run grids/quickstart.toml --out runs/quickstart --workers 2
    """
    grid = load_grid(grid_file)
    settings = RunSettings(executor=executor or grid.run.executor, workers=workers or grid.run.workers,
                           device=device or grid.run.device,
                           threads_per_worker=grid.run.threads_per_worker if threads is None else threads)
    progress: Progress | None = None

    def started(pending: int, skipped: int) -> None:
        nonlocal progress
        click.echo(f"{grid.name}: {len(grid.cells)} cells, {skipped} already done, {pending} to run "
                   f"({settings.executor}, {settings.workers} worker(s)) -> {out_dir}", err=True)
        progress = Progress(pending)

    try:
        outcome = run_grid(grid, out_dir, settings, report=lambda s: progress.update(s), on_start=started)
    except KeyboardInterrupt as interrupt:
        if progress is not None:
            progress.close()
        remaining = sum(cell.cell_id not in OutputDir(out_dir).done_ids() for cell in grid.cells)
        click.echo(f"interrupted: finished cells are kept; {remaining} cells remain. "
                   f"Run the same command again to resume.", err=True)
        sys.exit(143 if str(interrupt) == "SIGTERM" else 130)
    progress.close()
    out = OutputDir(out_dir)
    collect(out, order=[cell.cell_id for cell in grid.cells])
    failed = [s for s in outcome.finished if s.status != "done"]
    elapsed = sum(s.wall_s for s in outcome.finished)
    click.echo(f"ran {len(outcome.finished)} cells ({format_duration(progress.elapsed_s())} wall, "
               f"{format_duration(elapsed)} of cell time); results in {out.results}", err=True)
    click.echo(results_summary(out_dir, grid))
    if failed:
        click.echo(f"{len(failed)} cell(s) failed:", err=True)
        for summary in failed:
            click.echo(f"  {summary.cell_id}: {summary.error}", err=True)
        click.echo(f"details: evalgrid status {out_dir}; tracebacks in {out.logs}/", err=True)
        sys.exit(1)
