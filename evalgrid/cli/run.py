"""``evalgrid run``: run the cells not done yet, here or on Slurm."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from evalgrid.errors import OutputFull, UserError
from evalgrid.executors import EXECUTORS
from evalgrid.grid import MAX_CELLS, load_grid
from evalgrid.launch.progress import RunProgress, format_duration
from evalgrid.store.layout import OutputDir

if TYPE_CHECKING:  # the rest is imported when the command runs: `evalgrid --help` imports no torch
    from evalgrid.grid import Grid
    from evalgrid.launch.runner import RunOutcome


@click.command("run")
@click.argument("grid_file", metavar="GRID", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (created; a second run resumes it) [default: runs/<the grid's name>, in the "
                   "current folder].")
@click.option("--executor", type=click.Choice(EXECUTORS.names()), help="Where cells run [grid's run.executor].")
@click.option("--workers", type=click.IntRange(min=1), help="Cells run at once [grid's run.workers].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="[grid's run.device]")
@click.option("--threads", type=click.IntRange(min=0), help="Torch threads per worker; 0: cores / workers.")
@click.option("--cells-per-device", type=click.IntRange(min=1), metavar="K",
              help="Cells run at once on each device, each in its own worker: K per visible GPU (each worker pinned "
                   "to one; fewer when K do not fit in its memory), K on the CPU; with --executor slurm, per task "
                   "GPU [grid's run.cells_per_device, or slurm.cells_per_device; 1].")
@click.option("--stack-trials", type=click.IntRange(min=0),
              help="A cell's attack trials run together, at most N at once [grid's run.stack_trials; 1: one by one; "
                   "0 (default): where measured to pay on the device, evalgrid/evaluation/packing.py].")
@click.option("--pack-cells", type=click.IntRange(min=0),
              help="Cells of one architecture, batch shape and attack run as lanes of one stacked attack, at most N "
                   "per pack [grid's run.pack_cells; 1: each alone; 0 (default): where measured to pay on the "
                   "device, evalgrid/evaluation/packing.py].")
@click.option("--speedups", help="Attack-loop switches, comma-separated: tf32, channels_last, bf16, fp16 "
                                 "[grid's run.speedups; none].")
@click.option("--profile", help="Slurm: a cluster profile, NAME or path [grid's slurm.profile].")
@click.option("--wait", is_flag=True, help="Slurm: stay until every submitted cell has ended, with progress.")
@click.option("--max-cells", type=click.IntRange(min=1), default=MAX_CELLS, show_default=True,
              help="Refuse a grid whose factor lists give more cells, before making any.")
@click.option("--alongside", is_flag=True,
              help="Go on although Slurm tasks of DIR are queued or running; their cells are left to them.")
@click.option("--no-check", "check", flag_value=False, default=True,
              help="Skip the checks of data, weights, models and implementations before dispatch (retry does: "
                   "DIR's grid was checked when it was first run). A missing file then fails its cells instead.")
def command(grid_file: Path, out_dir: Path | None, executor: str | None, workers: int | None, device: str | None,
            threads: int | None, cells_per_device: int | None, stack_trials: int | None, pack_cells: int | None,
            speedups: str | None,
            profile: str | None, wait: bool, max_cells: int, alongside: bool, check: bool) -> None:
    """Run every cell of GRID that has no result in DIR yet, then collect DIR/results.parquet.

    A failing cell is recorded (status failed, with its error) and the others go on. Exit code 0
    when every cell is done, 1 when some failed, 2 for usage errors, 130 when interrupted
    (finished cells stay; run the same command again to resume).

    With --executor slurm the cells are submitted as job arrays and the command returns (unless
    --wait); `evalgrid status DIR` follows them, `evalgrid cancel DIR` stops them, and running the
    same command again submits the cells neither done nor held by a queued or running task.

    Without --out, DIR is runs/NAME in the current folder, NAME the grid's `name` made a safe
    folder name (letters, digits, '-', '_', '.'; the grid file's name when nothing is left).

    \b
    Example:
      evalgrid run grids/quickstart.toml                 # into runs/quickstart
      evalgrid run grids/quickstart.toml --out runs/quickstart --workers 2
      evalgrid run grids/quickstart.toml --out runs/quickstart --device cuda --cells-per-device 4
      evalgrid run grids/quickstart.toml --out runs/quickstart --executor slurm --profile mycluster
    """
    from evalgrid.launch.runner import RunSettings, run_grid
    from evalgrid.evaluation.speedups import parse_speedups
    from evalgrid.store.results import collected_is_whole

    grid = load_grid(grid_file, max_cells)
    if out_dir is None:
        out_dir = default_out_dir(grid.name, grid_file)
        click.echo(f"output: {out_dir}", err=True)
    name = executor or grid.run.executor
    slurm = None
    if name == "slurm":
        from evalgrid.executors.slurm.resources import resolve_resources

        slurm = resolve_resources(grid.slurm, grid.resolved.get("slurm", {}), profile, grid.base_dir)
        if cells_per_device is not None:  # the tasks' own, not the launcher's
            slurm = dataclasses.replace(slurm, cells_per_device=cells_per_device)
    settings = RunSettings(executor=name, workers=workers or grid.run.workers, device=device or grid.run.device,
                           threads_per_worker=grid.run.threads_per_worker if threads is None else threads,
                           cells_per_device=1 if slurm else cells_per_device or grid.run.cells_per_device,
                           slurm=slurm, alongside=alongside,
                           stack_trials=grid.run.stack_trials if stack_trials is None else stack_trials,
                           pack_cells=grid.run.pack_cells if pack_cells is None else pack_cells,
                           speedups=parse_speedups(grid.run.speedups if speedups is None else speedups),
                           check=check)
    progress: RunProgress | None = None

    def started(pending: int, skipped: int) -> None:
        nonlocal progress
        where = f"slurm, profile {slurm.profile}" if slurm and slurm.profile else (
            "slurm" if slurm else f"{settings.executor}, {_pool_words(settings)}")
        verb = "to submit" if slurm else "to run"
        click.echo(f"{grid.name}: {len(grid.cells)} cells, {skipped} already done, {pending} {verb} "
                   f"({where}) -> {out_dir}", err=True)
        progress = RunProgress(pending)

    def note(line: str) -> None:  # also while the bar is drawn (a lowered cells_per_device): on a line of its own
        if progress is not None and progress.interactive:
            click.echo("\r\033[K", nl=False, err=True)
        _note(line)

    def run_once() -> RunOutcome:
        try:
            return run_grid(grid, out_dir, settings, report=lambda s: progress.update(s), on_start=started, say=note,
                            watch=lambda running: progress.show_running(running))
        except OutputFull as full:
            if progress is not None:
                progress.close()
            done = OutputDir(out_dir).done_ids() | OutputDir(out_dir).failed_ids()
            left = [cell.cell_id for cell in grid.cells if cell.cell_id not in done]
            shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
            raise UserError(f"{out_dir}: {full}. The run stopped: {len(left)} cells are not run ({shown}); finished "
                            f"cells are kept and nothing is half-written. Free space there and run the same command "
                            f"again.") from None
        except KeyboardInterrupt as interrupt:
            if progress is not None:
                progress.close()
            done = OutputDir(out_dir).done_ids()  # one listing, not one per cell
            remaining = sum(cell.cell_id not in done for cell in grid.cells)
            click.echo(f"interrupted: finished cells are kept; {remaining} cells remain. "
                       f"Run the same command again to resume.", err=True)
            sys.exit(143 if str(interrupt) == "SIGTERM" else 130)

    outcome = run_once()
    if slurm is not None:
        _submitted(grid, out_dir, outcome, wait)
        return
    progress.close()
    finished, wall_s = list(outcome.finished), progress.elapsed_s()
    out = OutputDir(out_dir)
    if not finished and collected_is_whole(out):
        _finish(grid, out_dir, finished, wall_s)  # nothing ran and results.parquet holds every result
        return
    if _collect(grid, out):  # the full read moved result files aside: run their cells now
        click.echo("running again the cells whose result files were moved aside", err=True)
        again = run_once()
        progress.close()
        finished, wall_s = finished + again.finished, wall_s + progress.elapsed_s()
        _collect(grid, OutputDir(out_dir))
    _finish(grid, out_dir, finished, wall_s)


RUNS_FOLDER = Path("runs")  # where `run` without --out puts DIR, relative to the current folder
UNSAFE_IN_FOLDER_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FOLDER_NAME = 100


def default_out_dir(grid_name: str, grid_file: Path) -> Path:
    """runs/<grid name> for a run without --out: the name made one safe folder name (runs of other
    characters become '-'; dots, '-' and '_' trimmed from its ends, so never '..' or hidden),
    else the grid file's name made so, else "grid"."""
    for candidate in (grid_name, Path(grid_file).stem):
        safe = UNSAFE_IN_FOLDER_NAME.sub("-", candidate)[:MAX_FOLDER_NAME].strip("._-")
        if safe:
            return RUNS_FOLDER / safe
    return RUNS_FOLDER / "grid"


def _pool_words(settings) -> str:
    pool = (f"{settings.cells_per_device} cells per device" if settings.cells_per_device > 1
            else f"{settings.workers} worker(s)")
    if settings.pack_cells > 1:
        return f"{pool}, up to {settings.pack_cells} cells packed as lanes of one attack"
    return pool


def _note(line: str) -> None:
    click.echo(f"note: {line}", err=True)


def _collect(grid: Grid, out: OutputDir) -> set[str]:
    """Collect DIR/results.parquet; the ids of the grid's cells whose result files it moved aside
    (the full read finds what the check before the run cannot: another schema, another cell's row)."""
    from evalgrid.store.results import collect

    before = out.done_ids() | out.failed_ids()
    collect(out, order=lambda: [cell.cell_id for cell in grid.cells], say=_note)
    return (before - out.done_ids() - out.failed_ids()) & {cell.cell_id for cell in grid.cells}


def _submitted(grid: Grid, out_dir: Path, outcome: RunOutcome, wait: bool) -> None:
    from evalgrid.cli.summary import results_summary
    from evalgrid.executors.slurm.follow import describe_submission, wait_for_cells
    from evalgrid.store.results import collect

    if outcome.held:
        click.echo(f"{outcome.held} cell(s) left to the Slurm tasks that hold them", err=True)
    if outcome.submission is None:
        click.echo("nothing to submit", err=True)
        if not wait:
            return
    else:
        click.echo(describe_submission(outcome.submission), err=True)
    if not wait:
        click.echo(f"follow with: evalgrid status {out_dir}   (results: evalgrid collect {out_dir})", err=True)
        return
    ids = [cell.cell_id for cell in grid.cells]
    counts, elapsed = wait_for_cells(OutputDir(out_dir), ids)
    out = OutputDir(out_dir)
    collect(out, order=lambda: ids, say=_note)
    click.echo(f"ended after {format_duration(elapsed)}; results in {out.results}", err=True)
    click.echo(results_summary(out_dir, grid))
    unfinished = {state: n for state, n in counts.items() if state != "done" and n}
    if unfinished:
        click.echo(f"not done: {', '.join(f'{n} {state}' for state, n in unfinished.items())}; "
                   f"details: evalgrid status {out_dir}; `evalgrid retry {out_dir}` resubmits them", err=True)
        sys.exit(1)


def _finish(grid: Grid, out_dir: Path, finished: list, wall_s: float) -> None:
    """The summary of a local run whose results were collected."""
    from evalgrid.cli.summary import results_summary

    out = OutputDir(out_dir)
    failed = [s for s in finished if s.status != "done"]
    elapsed = sum(s.wall_s for s in finished)
    click.echo(f"ran {len(finished)} cells ({format_duration(wall_s)} wall, "
               f"{format_duration(elapsed)} of cell time); results in {out.results}", err=True)
    click.echo(results_summary(out_dir, grid))
    if failed:
        click.echo(f"{len(failed)} cell(s) failed:", err=True)
        for summary in failed:
            click.echo(f"  {summary.cell_id}: {summary.error}", err=True)
        click.echo(f"details: evalgrid status {out_dir}; tracebacks in {out.logs}/", err=True)
        sys.exit(1)
