"""``evalgrid table``: a paper's table regenerated from a run, published numbers beside."""

from __future__ import annotations

import os
from pathlib import Path

import click

from evalgrid.errors import UserError
from evalgrid.tables.definition import LISTED_ONLY

FORMATS = ("markdown", "latex", "csv")


@click.command("table")
@click.argument("name", required=False)
@click.argument("out_dir", metavar="DIR", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "format_", type=click.Choice(FORMATS), default="markdown", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the table to FILE (atomically) instead of printing it.")
@click.option("--list", "list_tables", is_flag=True, help="List the tables, their papers and grids.")
def command(name: str | None, out_dir: Path | None, format_: str, out_file: Path | None, list_tables: bool) -> None:
    """Regenerate table NAME from the results in DIR: the paper's rows and columns, each cell the
    measured mean ± std over seeds and trials beside the published value and the difference, then
    whether each measured trend goes the paper's way.

    DIR must hold a run of the table's grid or of its smoke companion (evalgrid table --list).

    \b
    Example:
      evalgrid run grids/sok/smoke/table1_local_updates.toml --out runs/sok-table1-smoke
      evalgrid table sok_table1 runs/sok-table1-smoke
      evalgrid table sok_table1 runs/sok-table1-smoke --format latex --out table1.tex
    """
    from evalgrid.tables.catalog import load_definition, table_names

    if list_tables:
        if name or out_dir:
            raise UserError("evalgrid table --list takes no NAME or DIR.")
        for table_name in table_names():
            click.echo(_listed(table_name, load_definition(table_name)))
        return
    if not name or out_dir is None:
        raise UserError("usage: evalgrid table NAME DIR [--format markdown|latex|csv], or evalgrid table --list.")
    from evalgrid.tables import regenerate
    from evalgrid.tables.render import FORMATS as RENDERERS

    definition = load_definition(name)
    if definition.kind in LISTED_ONLY:
        raise UserError(f"{name} ({definition.title}) is {definition.kind}: {definition.reason} Nothing to "
                        f"regenerate.")
    text = RENDERERS[format_](regenerate(definition, out_dir))
    if out_file is None:
        click.echo(text, nl=False)
        return
    from evalgrid.store.atomic import atomic_write_text

    atomic_write_text(out_file, text)
    click.echo(f"{name} -> {out_file}")


SHOWN_KIND = {"numbers": "published values", "figure": "a figure: the paper's stated trend",
              "picture": "picture only: reconstructions beside the originals, per-image values under each"}


def _listed(name: str, definition) -> str:
    """Two lines of ``table --list``: the title, then the grids and what the paper publishes."""
    if definition.kind in LISTED_ONLY:
        return f"{name}: {definition.title}\n    {definition.kind}: {definition.reason}"
    smoke = f", smoke {_shown(definition.smoke)}" if definition.smoke else ""
    return f"{name}: {definition.title}\n    grid {_shown(definition.grid)}{smoke}; {SHOWN_KIND[definition.kind]}"


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
