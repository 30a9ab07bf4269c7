"""``evalgrid report``: one self-contained HTML file to look at a run's results."""

from __future__ import annotations

from pathlib import Path

import click

from evalgrid.report.options import DEFAULT_MAX_CELLS
from evalgrid.store.atomic import atomic_write_text


@click.command("report")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the report (default DIR/report.html).")
@click.option("--max-cells", type=click.IntRange(min=0), default=DEFAULT_MAX_CELLS, show_default=True,
              help="Show the reconstructions of at most this many done cells (in grid order).")
def command(out_dir: Path, out_file: Path | None, max_cells: int) -> None:
    """Write an HTML report of DIR: the grid and its progress, each metric against each varied
    factor (mean ± std over seeds), privacy against utility, each done cell's originals and
    reconstructions with their PSNR, and every failure with its traceback.

    One file, images embedded, nothing fetched: open it in any browser, or mail it.

    \b
    Example:
      evalgrid report runs/quickstart
      evalgrid report runs/paper --out paper.html --max-cells 50
    """
    from evalgrid.report import build_report

    target = out_file if out_file is not None else out_dir / "report.html"
    atomic_write_text(target, build_report(out_dir, max_cells=max_cells))
    click.echo(f"report -> {target}")
