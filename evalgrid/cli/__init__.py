"""The ``evalgrid`` command line. User mistakes print one paragraph and exit 2, never a traceback."""

from __future__ import annotations

import importlib
import sys

import click

from evalgrid import __version__
from evalgrid.errors import UserError


# Each command is the ``command`` of the module evalgrid.cli.NAME, imported only when it is used:
# start-up stays light (no torch for `evalgrid plan --help`); `evalgrid --help` imports them all.
COMMANDS = ("plan", "run", "status", "cancel", "retry", "collect", "table", "report", "weights", "components")


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:  # an unknown name loads them all: click suggests the closest
            for name in [cmd_name] if cmd_name in COMMANDS else COMMANDS:
                self.add_command(importlib.import_module(f"evalgrid.cli.{name}").command)
        return self.commands.get(cmd_name)

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
