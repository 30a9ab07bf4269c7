"""``evalgrid weights``: the pretrained weight files evalgrid reads from the torch cache."""

from __future__ import annotations

import click


@click.group("weights")
def command() -> None:
    """List or download the weight files (e.g. LPIPS' AlexNet) into the torch cache.

    Runs never download: fetch on a machine with internet, then copy the torch cache
    (TORCH_HOME, default ~/.cache/torch) to the machines without.

    \b
    Example:
      evalgrid weights list
      evalgrid weights fetch alexnet
    """


@command.command("list")
def list_weights() -> None:
    """Each weight file, where it is expected, and whether it is present."""
    from evalgrid.models.weights import WEIGHTS, missing_weights, weights_path

    missing = set(missing_weights(WEIGHTS.names()))
    for name in WEIGHTS.names():
        click.echo(f"{name:13s} {'missing' if name in missing else 'present'}  {weights_path(name)}")


@command.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every file evalgrid knows (about 2.9 GB).")
def fetch(names: tuple[str, ...], everything: bool) -> None:
    """Download NAMES into the torch cache (the error that stopped a grid names them). Needs internet."""
    from evalgrid.models.weights import WEIGHTS, fetch_weights

    if not names and not everything:
        raise click.UsageError(f"name the files to fetch, or pass --all. Known: {', '.join(WEIGHTS.names())}.")
    for name in names or WEIGHTS.names():
        path = fetch_weights(name)
        click.echo(f"{name}: {path}")
