"""The ``evalgrid`` command line. User mistakes print one paragraph and exit 2, never a traceback."""

from __future__ import annotations

import sys

import click

from evalgrid import __version__
from evalgrid.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="evalgrid")
def main() -> None:
    """Evaluate gradient inversion attacks against federated learning over a grid of settings.

    \b
    Example:
      evalgrid plan grids/quickstart.toml
      evalgrid run grids/quickstart.toml --out runs/quickstart
      evalgrid status runs/quickstart
    """


def _register() -> None:
    from evalgrid.cli import cancel, collect, components, plan, report, retry, run, status, table, weights

    for module in (plan, run, status, cancel, retry, collect, table, report, weights, components):
        main.add_command(module.command)


_register()
