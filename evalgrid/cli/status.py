"""``evalgrid status``: where a run stands (with Slurm's view of its tasks when it was submitted)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import click

from evalgrid.errors import UserError
from evalgrid.store.layout import OutputDir

if TYPE_CHECKING:
    from evalgrid.store.cell_progress import CellProgress


@click.command("status")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cell", "cell_id", help="One cell: its state, Slurm job and the tail of its task's stdout/stderr.")
@click.option("--refresh", is_flag=True, help="Ask Slurm now instead of using an answer up to 10 s old.")
def command(out_dir: Path, cell_id: str | None, refresh: bool) -> None:
    """Counts of the cells of DIR by state, and each failure's error.

    States: done, failed, pending (not run yet); for a directory run with --executor slurm:
    queued, running, lost (its task ended without a result: the next run resubmits it) and
    not submitted. Slurm is asked with one sacct call for all of DIR's jobs.

    The running cells are listed with their trial, iteration of the planned ones, the attack's
    latest loss and how long ago that was written (DIR/running/<id>.json, updated every few
    seconds by the process running the cell); a file without an update for two minutes, or
    whose process on this machine is gone, is flagged stale.

    \b
    Example:
      evalgrid status runs/quickstart
      evalgrid status runs/paper --cell 3f2a9c0d1e4b
    """
    out = OutputDir(out_dir)
    if not out.grid_toml.is_file():
        raise UserError(f"{out_dir}: not an evalgrid output directory (no grid.toml); "
                        f"start one with: evalgrid run GRID --out {out_dir}")
    ids = out.cell_ids()
    from evalgrid.executors.slurm.ledger import read_submissions

    on_slurm = bool(read_submissions(out))
    if on_slurm and shutil.which("sacct") is None:
        click.echo(f"note: {out_dir} was submitted to Slurm but sacct is not here: showing its result files only",
                   err=True)
        on_slurm = False
    if cell_id is not None:
        _one_cell(out, cell_id, ids, on_slurm, refresh)
        return
    click.echo(f"{out.grid_name()}: {len(ids)} cells")
    if on_slurm:
        from evalgrid.executors.slurm.cells import cell_states
        from evalgrid.executors.slurm.follow import count_states

        states = cell_states(out, ids, fresh=refresh)
        for state, count in count_states(states).items():
            click.echo(f"  {state:<14}{count}")
        for cid, state in states.items():
            if state.state == "lost":
                click.echo(f"  {cid} lost: its task {state.job_id} ended {state.slurm_state} without a result")
        _running(out, [cid for cid, state in states.items() if state.state == "running"])
    else:
        done, failed = out.done_ids(), out.failed_ids()
        click.echo(f"  done     {len(set(ids) & done)}")
        click.echo(f"  failed   {len(set(ids) & failed)}")
        click.echo(f"  pending  {len(set(ids) - done - failed)}")
        _running(out, [cid for cid in ids if cid not in done])
    others = (out.done_ids() | out.failed_ids()) - set(ids)
    if others:
        click.echo(f"  ({len(others)} more results from cells no longer in the grid)")
    for failed_id in sorted(set(ids) & out.failed_ids()):
        click.echo(f"  {failed_id} {_failure(out, failed_id)}  (log: {out.log(failed_id)})")


def _one_cell(out: OutputDir, cell_id: str, ids: list[str], on_slurm: bool, refresh: bool) -> None:
    if cell_id not in ids:
        raise UserError(f"{out.root}: no cell {cell_id!r} in this directory's grid "
                        f"(`evalgrid plan {out.grid_toml}` lists the ids).")
    if on_slurm:
        from evalgrid.executors.slurm.cells import cell_states
        from evalgrid.executors.slurm.follow import cell_story

        click.echo(cell_story(out, cell_states(out, [cell_id], fresh=refresh)[cell_id], cell_id, refresh))
    else:
        state = "done" if cell_id in out.done_ids() else "failed" if cell_id in out.failed_ids() else "pending"
        click.echo(f"cell {cell_id}: {'running' if _runs_here(out, cell_id) else state}")
        if out.log(cell_id).is_file():
            click.echo(f"  log: {out.log(cell_id)}")
    _running(out, [cell_id], heading=False)
    if cell_id in out.failed_ids():
        click.echo(f"  error: {_failure(out, cell_id)}")


def _runs_here(out: OutputDir, cell_id: str) -> bool:
    """Whether a live progress file says the cell runs now (a local run's cells have no other state)."""
    from evalgrid.store.cell_progress import read_running, this_host, utc_now

    return bool(read_running(out, [cell_id]).live(utc_now(), this_host()))


def _running(out: OutputDir, cell_ids: list[str], heading: bool = True) -> None:
    """The progress files of these cells (a cell that is done has none that counts): one line
    each, the longest-running first; a damaged file is one note, never a traceback."""
    from evalgrid.store.cell_progress import read_running, this_host, utc_now

    running = read_running(out, cell_ids)
    if running.damaged:
        more = f" and {len(running.damaged) - 1} more" if len(running.damaged) > 1 else ""
        click.echo(f"note: ignored a damaged progress file, {running.damaged[0]}{more}", err=True)
    if not running.cells:
        return
    now, host = utc_now(), this_host()
    if heading:
        click.echo(f"  running now ({len(running.cells)}, from {out.running}):")
    for progress in sorted(running.cells.values(), key=lambda p: (p.started_at, p.cell_id)):
        click.echo(f"  {'  ' if heading else ''}{progress_line(progress, now, host)}")


def progress_line(progress: CellProgress, now: dt.datetime, host: str) -> str:
    """E.g. ``3f2a1c9d0e4b trial 1/2 it 150/300 loss 1.23e-03, updated 2s ago (node7, pid 812,
    started 5m03s ago)``, with why the file looks stale when it does."""
    from evalgrid.launch.progress import format_duration
    from evalgrid.store.cell_progress import STALE_S

    age = progress.age_s(now)
    line = (f"{progress.cell_id} {progress.describe()}, updated {format_duration(max(age, 0))} ago "
            f"({progress.host}, pid {progress.pid}, started "
            f"{format_duration(max((now - progress.started_at).total_seconds(), 0))} ago)")
    if progress.process_gone(host):
        return f"{line}; stale: its process is gone"
    if age > STALE_S:
        return f"{line}; stale? no update for {format_duration(age)}"
    return line


def _failure(out: OutputDir, cell_id: str) -> str:
    import pyarrow as pa  # here: `evalgrid --help` lists this command without loading Arrow
    import pyarrow.parquet as pq

    try:
        row = pq.read_table(out.failed_result(cell_id), columns=["error_type", "error_message"]).to_pylist()[0]
    except (pa.ArrowException, OSError, IndexError, KeyError) as error:
        return f"(its result file cannot be read: {type(error).__name__}; `evalgrid run` moves it aside and reruns it)"
    message = (row["error_message"] or "").strip().splitlines()
    return f"{row['error_type']}: {message[0] if message else ''}"
