"""The ``evalgrid`` command line. User mistakes print one paragraph and exit 2, never a traceback."""

from __future__ import annotations

import errno
import importlib
import sys
import unicodedata
import warnings

import click

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
            with warnings.catch_warnings():
                warnings.showwarning = _show_note
                return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {_printable(str(error))}", err=True)
            sys.exit(error.exit_code)
        except OSError as error:  # a path the user gave that the system refuses, wherever it is first touched
            if error.filename is None or error.errno not in PATH_ERRORS:
                raise
            click.echo(f"error: {_printable(str(error.filename))}: {error.strerror}. Check this path (on the command "
                       f"line or in the grid file).", err=True)
            sys.exit(2)


# The errors the system gives about a path itself (not about evalgrid): a name too long, a loop of
# symbolic links, a folder where a file belongs or the reverse, no permission, a read-only file system.
PATH_ERRORS = {errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS}


def _printable(text: str) -> str:
    """``text`` with every control character but newline and tab escaped (\\x1b, ...): a message
    may echo bytes from a user's file, which must not drive the terminal."""
    return "".join(c if c in "\n\t" or unicodedata.category(c)[0] != "C" else repr(c)[1:-1] for c in text)


def _show_note(message, category, filename, lineno, file=None, line=None) -> None:
    """Notes about skipped files and stale rows as plain lines; other warnings as Python prints them."""
    from evalgrid.store.results import ResultsNote

    if issubclass(category, ResultsNote):
        click.echo(f"note: {_printable(str(message))}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line), err=True, nl=False)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="evalgrid", prog_name="evalgrid")  # the version is read when asked for
def main() -> None:
    """Evaluate gradient inversion attacks against federated learning over a grid of settings.

    \b
    Example:
      evalgrid plan grids/quickstart.toml
      evalgrid run grids/quickstart.toml --out runs/quickstart
      evalgrid status runs/quickstart
    """
