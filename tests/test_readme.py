"""The README tells the truth: every `evalgrid` command it shows parses against the real CLI
(no removed option, no stale choice), its `plan` example prints the rows and count that `plan`
prints today, and its abridged grid file is made of lines of grids/quickstart.toml."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from evalgrid.cli import main

REPOSITORY = Path(__file__).resolve().parents[1]
README = REPOSITORY / "README.md"
QUICKSTART = REPOSITORY / "grids" / "quickstart.toml"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def shown_commands() -> list[list[str]]:
    """Each `evalgrid ...` command of the README's console and bash blocks, as argv after `evalgrid`."""
    commands = []
    for block in blocks("console") + blocks("bash"):
        for line in block.splitlines():
            line = line.removeprefix("$ ").split(" #")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part)
                if words and Path(words[0]).name == "evalgrid":
                    commands.append(words[1:])
    return commands


def parse(argv: list[str]) -> None:
    """Parse ``argv`` as `evalgrid` would, without running it: unknown commands, options or choices raise."""
    command, words, context = main, list(argv), None
    while isinstance(command, click.Group):  # `evalgrid weights fetch`: a group in a group
        context = click.Context(command, info_name=words[0] if context else "evalgrid", parent=context)
        name = words.pop(0)
        command = command.get_command(context, name)
        assert command is not None, f"no command {name!r} in {argv}"
    try:
        command.make_context(name, words, parent=context)
    except click.BadParameter as error:
        if "does not exist" not in str(error):  # a path of the reader's own run: not the README's fault
            raise


def test_the_readme_shows_a_dozen_commands_at_least():
    assert len(shown_commands()) >= 12, shown_commands()


@pytest.mark.parametrize("argv", shown_commands(), ids=" ".join)
def test_every_command_the_readme_shows_parses_against_the_cli(argv):
    parse(argv)


def test_a_stale_option_in_the_readme_would_be_caught():
    with pytest.raises(click.NoSuchOption):
        parse(["run", "grids/quickstart.toml", "--executors", "local"])
    with pytest.raises(click.BadParameter):
        parse(["run", "grids/quickstart.toml", "--executor", "mpi"])


def test_the_readme_plan_example_prints_what_plan_prints(monkeypatch):
    block = next(b for b in blocks("console") if b.startswith("$ evalgrid plan grids/quickstart.toml"))
    command, *output = block.splitlines()
    shown = [line.rstrip() for line in output if line.strip() != "..."]
    monkeypatch.chdir(REPOSITORY)  # the README's paths are relative to the repository
    printed = CliRunner().invoke(main, shlex.split(command.removeprefix("$ evalgrid ")), catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    lines = [line.rstrip() for line in printed.output.splitlines()]
    assert shown[0] == lines[0]  # the header
    assert shown[-1] == lines[-1]  # "32 cells"
    missing = [line for line in shown[1:-1] if line not in lines]
    assert not missing, f"README rows that `evalgrid plan` does not print (stale cell ids?): {missing}"
    assert len(shown) >= 4


def test_the_readme_grid_file_is_an_abridged_quickstart():
    def key_lines(text: str) -> list[str]:
        return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]

    block = next(b for b in blocks("toml") if 'name = "quickstart"' in b)
    real = set(key_lines(QUICKSTART.read_text(encoding="utf-8")))
    stale = [line for line in key_lines(block) if line not in real]
    assert not stale, f"README grid lines not in {QUICKSTART.name}: {stale}"
