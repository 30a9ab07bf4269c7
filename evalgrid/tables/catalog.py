"""Where the table definitions live: $EVALGRID_ANALYSIS/tables, else the checkout's analysis/tables."""

from __future__ import annotations

import os
from pathlib import Path

from evalgrid.errors import UserError, choices_sentence, did_you_mean
from evalgrid.tables.definition import ListedOnly, TableDefinition, read_definition

ENVIRONMENT = "EVALGRID_ANALYSIS"


def tables_folder() -> Path:
    configured = os.environ.get(ENVIRONMENT)
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "analysis"
    folder = root / "tables"
    if not folder.is_dir():
        where = f"${ENVIRONMENT} = {configured}" if configured else "the evalgrid checkout"
        raise UserError(f"no table definitions at {folder} ({where}). They ship in the repository's analysis/ "
                        f"folder: install evalgrid from a checkout (pip install -e .) or set {ENVIRONMENT} to "
                        f"a folder holding tables/NAME.toml.")
    return folder


def table_names() -> list[str]:
    return sorted(path.stem for path in tables_folder().glob("*.toml"))


def load_definition(name: str) -> TableDefinition | ListedOnly:
    names = table_names()
    if name not in names:
        raise UserError(f"unknown table {name!r}.{did_you_mean(name, names)} {choices_sentence(names)} "
                        f"(evalgrid table --list describes them).")
    return read_definition(tables_folder() / f"{name}.toml")
