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
    """Download NAMES into the torch cache (the error that stopped a grid names them). Needs internet.

    Each file is checked (complete, its hash, loadable) before it appears in the cache; a failed
    download leaves nothing behind, says why and what to do instead, and exits with code 2.
    """
    from evalgrid.errors import UserError
    from evalgrid.models.weights import WEIGHTS, fetch_weights

    if not names and not everything:
        raise click.UsageError(f"name the files to fetch, or pass --all. Known: {', '.join(WEIGHTS.names())}.")
    wanted = list(dict.fromkeys(names or WEIGHTS.names()))
    for index, name in enumerate(wanted):
        try:
            path = fetch_weights(name)
        except UserError as error:
            rest = wanted[index + 1:]
            raise UserError(f"{error}" + (f" Not tried after it: {', '.join(rest)}." if rest else "")) from None
        click.echo(f"{name}: {path}")
