"""``evalgrid cancel``: stop a directory's queued and running Slurm tasks."""

from __future__ import annotations

from pathlib import Path

import click

from evalgrid.store.layout import OutputDir


@click.command("cancel")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def command(out_dir: Path) -> None:
    """scancel every queued or running Slurm task submitted from DIR (one call).

    Finished cells keep their results; an attack stopped mid-way keeps its checkpoint, and
    `evalgrid retry DIR` (or the same `evalgrid run`) submits the cells left again.

    \b
    Example:
      evalgrid cancel runs/paper
    """
    from evalgrid.executors.slurm.follow import cancel

    tasks, jobs = cancel(OutputDir(out_dir))
    click.echo(f"cancelled {tasks} task(s){' of job(s) ' + ', '.join(jobs) if jobs else ''}", err=True)
