"""``evalgrid status``: where a run stands."""

from __future__ import annotations

from pathlib import Path

import click
import pyarrow.parquet as pq

from evalgrid.errors import UserError
from evalgrid.grid import load_grid
from evalgrid.store.layout import OutputDir


@click.command("status")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def command(out_dir: Path) -> None:
    """Counts of done, failed and pending cells in DIR, and each failure's error.

    \b
    Example:
      evalgrid status runs/quickstart
    """
    out = OutputDir(out_dir)
    if not out.grid_toml.is_file():
        raise UserError(f"{out_dir}: not an evalgrid output directory (no grid.toml); "
                        f"start one with: evalgrid run GRID --out {out_dir}")
    grid = load_grid(out.grid_toml)
    ids = {cell.cell_id for cell in grid.cells}
    done, failed = out.done_ids(), out.failed_ids()
    pending = ids - done - failed
    click.echo(f"{grid.name}: {len(ids)} cells")
    click.echo(f"  done     {len(ids & done)}")
    click.echo(f"  failed   {len(ids & failed)}")
    click.echo(f"  pending  {len(pending)}")
    others = (done | failed) - ids
    if others:
        click.echo(f"  ({len(others)} more results from cells no longer in the grid)")
    for cell_id in sorted(ids & failed):
        row = pq.read_table(out.failed_result(cell_id), columns=["error_type", "error_message"]).to_pylist()[0]
        message = (row["error_message"] or "").strip().splitlines()
        click.echo(f"  {cell_id} {row['error_type']}: {message[0] if message else ''}  (log: {out.log(cell_id)})")
