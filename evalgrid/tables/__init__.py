"""The papers' tables regenerated from a run: published numbers beside measured ones, with the
difference and a computed trend verdict (``evalgrid table NAME DIR``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalgrid.errors import UserError
from evalgrid.tables.compare import Compared, compare, read_published
from evalgrid.tables.definition import TableDefinition, Trend
from evalgrid.tables.measure import MeasuredValue, aggregate, along_curves, measured_columns, measured_long
from evalgrid.tables.verdicts import Verdict, verdicts


@dataclass(frozen=True)
class RegeneratedTable:
    definition: TableDefinition
    run: Path
    grid_name: str
    smoke: bool  # the run is of the smoke companion
    done: int
    failed: int
    columns: dict[str, MeasuredValue]  # value name → the result column it was read from
    rows: list[Compared]
    verdicts: tuple[tuple[Trend, list[Verdict]], ...]  # per trend of the definition
    # A picture (kind "picture"): each done cell's keys (as the paper labels them) and its
    # reconstruction panel, originals above reconstructions, values under each.
    pictures: tuple[tuple[str, Path], ...] = ()
    under_budget: int = 0  # done cells that ran under their attack preset's budget (evaluation/budget.py)


def grid_names(definition: TableDefinition) -> dict[str, bool]:
    """Names of the table's grid (False) and its smoke companion (True)."""
    from evalgrid.grid.toml_io import read_grid_toml

    names = {str(read_grid_toml(definition.grid).data.get("name")): False}
    if definition.smoke is not None:
        names[str(read_grid_toml(definition.smoke).data.get("name"))] = True
    return names


def regenerate(definition: TableDefinition, run: Path) -> RegeneratedTable:
    """The table from the results in ``run`` (done cells only; a partial run gives a partial table)."""
    import evalgrid
    from evalgrid.grid.toml_io import read_grid_toml
    from evalgrid.store.layout import OutputDir

    out = OutputDir(Path(run))
    if not out.grid_toml.is_file():
        raise UserError(f"{run}: not an evalgrid output directory (no grid.toml): run a grid into it first.")
    ran = str(read_grid_toml(out.grid_toml).data.get("name"))
    names = grid_names(definition)
    if ran not in names:
        expected = " or ".join(repr(n) for n in names)
        raise UserError(f"{run} holds grid {ran!r}, but table {definition.name!r} is made from grid {expected} "
                        f"({definition.grid}). Run that grid into a directory, or pick the table of {ran!r} "
                        f"(evalgrid table --list).")
    cells = evalgrid.load(run)
    frame = along_curves(cells, evalgrid.load_curves(run), definition.curve_at) if definition.curve_at else cells
    columns = measured_columns(frame[frame["status"] == "done"], definition)
    measured = aggregate(measured_long(frame, definition, columns), definition)
    rows = compare(definition, read_published(definition), measured, columns)
    return RegeneratedTable(definition, Path(run), ran, names[ran], int((cells["status"] == "done").sum()),
                            int((cells["status"] == "failed").sum()), columns, rows,
                            tuple((trend, verdicts(definition, trend, rows, columns)) for trend in definition.trends),
                            pictures(definition, cells, out) if definition.kind == "picture" else (),
                            _under_budget(cells))


def _under_budget(cells) -> int:
    """The done cells that ran under budget (0 for results from before the column)."""
    from evalgrid.evaluation.budget import is_under_budget

    if "budget_share" not in cells:
        return 0
    return int(cells.loc[cells["status"] == "done", "budget_share"].map(is_under_budget).sum())


def pictures(definition: TableDefinition, frame, out) -> tuple[tuple[str, Path], ...]:
    """Each done cell's reconstruction panel, labelled with the table's keys (and the stand-in a
    key was measured on: "dataset = cifar10 (measured: digits)"), in the run's order."""
    import json

    from evalgrid.tables.measure import is_stand_in, key_value, unmapped_key_value

    keys = definition.keys
    shown = []
    for _, row in frame[frame["status"] == "done"].iterrows():
        config = json.loads(row["config"])
        parts = []
        for key in keys:
            value, measured = key_value(key, config, row), unmapped_key_value(key, config, row)
            stand_in = f" (measured: {measured})" if is_stand_in(key, measured) else ""
            parts.append(f"{key.name} = {value}{stand_in}")
        label = ", ".join(parts)
        path = out.artifacts(row["cell_id"]) / "reconstruction.png"
        if path.is_file():
            shown.append((f"{label}, seed {row['seed']}", path))
    return tuple(shown)
