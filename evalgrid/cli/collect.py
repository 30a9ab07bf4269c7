"""``evalgrid collect``: one Parquet file with every cell's result."""

from __future__ import annotations

from pathlib import Path

import click

from evalgrid.errors import UserError
from evalgrid.store.layout import OutputDir


@click.command("collect")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def command(out_dir: Path) -> None:
    """Merge every cell's result in DIR into DIR/results.parquet (written atomically).

    Load it with pandas.read_parquet, or use evalgrid.load(DIR) for proper dtypes.

    \b
    Example:
      evalgrid collect runs/quickstart
    """
    out = OutputDir(out_dir)
    if not out.cells.is_dir() and not out.failed.is_dir():
        raise UserError(f"{out_dir}: no cell results to collect (expected {out.cells}/).")

    def order() -> list[str] | None:
        return out.cell_ids() if out.grid_toml.is_file() else None

    from evalgrid.store.results import collect  # here: `evalgrid --help` lists this command without Arrow

    path, rows = collect(out, order, say=lambda line: click.echo(f"note: {line}", err=True))
    click.echo(f"{rows} rows -> {path}")
