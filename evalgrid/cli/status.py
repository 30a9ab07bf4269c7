"""``evalgrid status``: where a run stands (with Slurm's view of its tasks when it was submitted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from evalgrid.errors import UserError
from evalgrid.store.layout import OutputDir


@click.command("status")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cell", "cell_id", help="One cell: its state, Slurm job and the tail of its task's stdout/stderr.")
@click.option("--refresh", is_flag=True, help="Ask Slurm now instead of using an answer up to 10 s old.")
def command(out_dir: Path, cell_id: str | None, refresh: bool) -> None:
    """Counts of the cells of DIR by state, and each failure's error.

    States: done, failed, pending (not run yet); for a directory run with --executor slurm:
    queued, running, lost (its task ended without a result: the next run resubmits it) and
    not submitted. Slurm is asked with one sacct call for all of DIR's jobs.

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
    else:
        done, failed = out.done_ids(), out.failed_ids()
        click.echo(f"  done     {len(set(ids) & done)}")
        click.echo(f"  failed   {len(set(ids) & failed)}")
        click.echo(f"  pending  {len(set(ids) - done - failed)}")
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
        click.echo(f"cell {cell_id}: {state}")
        if out.log(cell_id).is_file():
            click.echo(f"  log: {out.log(cell_id)}")
    if cell_id in out.failed_ids():
        click.echo(f"  error: {_failure(out, cell_id)}")


def _failure(out: OutputDir, cell_id: str) -> str:
    import pyarrow as pa  # here: `evalgrid --help` lists this command without loading Arrow
    import pyarrow.parquet as pq

    try:
        row = pq.read_table(out.failed_result(cell_id), columns=["error_type", "error_message"]).to_pylist()[0]
    except (pa.ArrowException, OSError, IndexError, KeyError) as error:
        return f"(its result file cannot be read: {type(error).__name__}; `evalgrid run` moves it aside and reruns it)"
    message = (row["error_message"] or "").strip().splitlines()
    return f"{row['error_type']}: {message[0] if message else ''}"
