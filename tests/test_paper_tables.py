"""The papers' tables in analysis/tables: every definition reads, its paper grid and its smoke
companion validate and have the same shape, and the smoke's cells land on the published rows
(so a regenerated smoke table always has numbers beside the paper's). Checked without running
a cell; the smoke grids themselves are run by hand (analysis/README.md), minutes each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalgrid.grid import load_grid
from evalgrid.tables.compare import read_published
from evalgrid.tables.definition import LISTED_ONLY, read_definition
from evalgrid.tables.measure import canonical, key_value

ROOT = Path(__file__).resolve().parents[1]
EVERY = sorted((ROOT / "analysis" / "tables").glob("*.toml"))
DEFINITIONS = [path for path in EVERY if read_definition(path).kind not in LISTED_ONLY]
# Every table and figure of both papers (analysis/published/INVENTORY.md): the SoK has 7 tables
# and 11 figures, FedLeak 19 tables and 10 figures.
PAPERS = {"sok": (7, 11), "fedleak": (19, 10)}


def test_every_table_and_figure_of_both_papers_is_listed():
    names = {path.stem for path in EVERY}
    wanted = {f"{paper}_{kind}{number}" for paper, (tables, figures) in PAPERS.items()
              for kind, count in (("table", tables), ("fig", figures)) for number in range(1, count + 1)}
    assert wanted <= names, f"missing: {sorted(wanted - names)}"
    assert names <= wanted, f"not a table or figure of the papers: {sorted(names - wanted)}"


def test_a_table_or_figure_without_a_grid_says_why():
    for path in EVERY:
        definition = read_definition(path)
        if definition.kind in LISTED_ONLY:
            assert len(definition.reason) > 40, path.stem


@pytest.fixture(scope="module", params=DEFINITIONS, ids=lambda path: path.stem)
def table(request):
    definition = read_definition(request.param)
    assert definition.smoke is not None, f"{definition.name} has no smoke companion"
    return definition, load_grid(definition.grid), load_grid(definition.smoke)


def test_the_smoke_grid_has_the_paper_grids_shape(table):
    definition, paper, smoke = table
    assert set(smoke.varied) == set(paper.varied)
    assert smoke.name == f"{paper.name}-smoke"


def factor_keys(definition, grid) -> list[dict[str, str]]:
    """Each cell's factor-sourced keys as the table will label them (result columns need a run)."""
    keys = [key for key in definition.keys if key.factor]
    return [{key.name: canonical(key_value(key, json.loads(cell.canonical_json()), None)) for key in keys}
            for cell in grid.cells]


def test_every_smoke_cell_lands_on_the_papers_series(table):
    """The keys that name a series (all but a trend's `along`, which a smoke may scale down,
    e.g. batch sizes 1-4 for the paper's 5-100) read as the paper labels them."""
    definition, paper, smoke = table
    published = read_published(definition)
    if published.empty:
        pytest.skip(f"{definition.name} is a figure: no published rows")
    scaled = {trend.along for trend in definition.trends}
    for name, labels in ((paper.name, factor_keys(definition, paper)), (smoke.name, factor_keys(definition, smoke))):
        labels = [{key: value for key, value in cell.items() if key not in scaled} for cell in labels]
        known = {key: set(published[key].map(canonical)) for key in labels[0]}
        unmatched = [cell for cell in labels if any(value not in known[key] for key, value in cell.items())]
        if name == smoke.name:
            assert not unmatched, f"{name}: cells whose labels the paper does not have: {unmatched[:3]}"
        else:
            assert len(unmatched) < len(labels), f"{name}: no cell lands on a published row"
