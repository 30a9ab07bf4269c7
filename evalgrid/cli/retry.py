"""``evalgrid retry``: run again the cells of a directory that are failed, lost or not run."""

from __future__ import annotations

from pathlib import Path

import click

from evalgrid.errors import UserError
from evalgrid.store.layout import OutputDir


@click.command("retry")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Slurm: stay until the resubmitted cells have ended.")
@click.pass_context
def command(ctx: click.Context, out_dir: Path, wait: bool) -> None:
    """Run the cells of DIR that have no result (failed, lost or never run), the way DIR was
    last run: with the grid file and Slurm profile of its last submission, else locally from
    DIR/grid.toml. Cells a queued or running task holds are left to it. The checks `run` makes
    before dispatch are skipped (they passed when DIR was first run), so resubmitting to Slurm
    imports no torch on the login node.

    \b
    Example:
      evalgrid retry runs/paper
    """
    from evalgrid.cli import run
    from evalgrid.executors.slurm.ledger import read_submissions

    out = OutputDir(out_dir)
    if not out.grid_toml.is_file():
        raise UserError(f"{out_dir}: not an evalgrid output directory (no grid.toml).")
    submissions = read_submissions(out)
    if not submissions:
        ctx.invoke(run.command, grid_file=out.grid_toml, out_dir=out_dir, check=False)
        return
    resources = submissions[-1].resources
    grid_file = Path(resources.get("grid_file") or out.grid_toml)
    if not grid_file.is_file():
        grid_file = out.grid_toml
    ctx.invoke(run.command, grid_file=grid_file, out_dir=out_dir, executor="slurm",
               profile=resources.get("profile") or None, wait=wait, alongside=True, check=False)
