"""The runner at scale (benchmarks/runner_scale.py) without a change in what it computes:
ids from the fast expansion, the plan's output, checks run once per distinct setup, the
results collected and loaded in bulk, and the command line's lazy start-up."""

from __future__ import annotations

import dataclasses
import json
import pickle
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import evalgrid
from conftest import MINIMAL_GRID
from evalgrid.grid.cell import CANONICAL_KEYS, SCHEMA_FIELD, CellConfig, canonical_field, config_id, factor_label
from evalgrid.errors import UserError
from evalgrid.grid import load_grid
from evalgrid.grid.order import factor_order
from evalgrid.launch.preflight import check_ready, distinct_setups
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import collect, empty_row, read_rows, result_schema, write_result

REPO = Path(__file__).resolve().parents[1]
GRID_FILES = sorted((REPO / "grids").rglob("*.toml"))

TWO_MODELS = """
name = "two-models"
metrics = ["psnr"]
[factors]
dataset = ["digits"]
model = ["lenet", { name = "convnet", width = 8 }]
attack = ["ig", "idlg"]
gradient_source = ["SOURCE"]
seed = [0, 1, 2]
"""


def fresh(cell: CellConfig) -> CellConfig:
    """The same config made by the dataclass's constructor: its id is computed, not given."""
    return CellConfig(**{f.name: getattr(cell, f.name) for f in dataclasses.fields(cell)})


# --------------------------------------------------------------------------- cell ids


@pytest.mark.parametrize("path", GRID_FILES, ids=lambda p: str(p.relative_to(REPO / "grids")))
def test_expanded_ids_are_the_hash_of_each_cells_canonical_json(path):
    for cell in load_grid(path).cells:
        assert cell.cell_id == fresh(cell).cell_id == config_id(cell.canonical_json())


def test_a_cells_canonical_json_is_its_fields_fragments_joined_in_key_order(write_grid):
    cell = load_grid(write_grid(MINIMAL_GRID)).cells[-1]
    fragments = [SCHEMA_FIELD if key == "schema" else canonical_field(key, getattr(cell, key), cell.metrics)
                 for key in CANONICAL_KEYS]
    assert "{" + ",".join(filter(None, fragments)) + "}" == cell.canonical_json()  # an absent factor: no fragment
    assert json.loads(cell.canonical_json()) == cell.canonical()


def test_an_expanded_cell_equals_hashes_and_pickles_like_a_constructed_one(write_grid):
    cell = load_grid(write_grid(MINIMAL_GRID)).cells[0]
    made = fresh(cell)
    assert cell == made and hash(cell) == hash(made) and cell.factor_labels() == made.factor_labels()
    assert pickle.loads(pickle.dumps(cell)) == cell
    assert dataclasses.replace(cell, seed=5).cell_id != cell.cell_id


# --------------------------------------------------------------------------- plan-time checks


def test_every_model_of_a_grid_is_checked_not_only_the_first(write_grid):
    # "fc" is a module of LeNet but not of the ConvNet: only a check of the second model finds it
    check_ready(load_grid(write_grid(TWO_MODELS.replace("SOURCE", "all"))))
    with pytest.raises(UserError, match="gradient source 'fc'"):
        check_ready(load_grid(write_grid(TWO_MODELS.replace("SOURCE", "fc"))))


def test_cells_that_differ_only_in_their_seed_are_checked_once_in_grid_order(write_grid):
    grid = load_grid(write_grid(TWO_MODELS.replace("SOURCE", "all")))  # 2 models × 2 attacks × 3 seeds
    setups = distinct_setups(grid.cells)
    assert [(str(cell.model), str(cell.attack)) for cell in setups] == [
        ("lenet", "ig"), ("lenet", "idlg"), ("convnet(width=8)", "ig"), ("convnet(width=8)", "idlg")]
    assert setups == [grid.cells[0], grid.cells[3], grid.cells[6], grid.cells[9]]


def test_equal_values_held_by_different_objects_are_one_setup(write_grid):
    cells = load_grid(write_grid(TWO_MODELS.replace("SOURCE", "all"))).cells
    copies = [dataclasses.replace(cell, model=dataclasses.replace(cell.model)) for cell in cells]
    assert len(distinct_setups(copies)) == 4


# --------------------------------------------------------------------------- plan output


def test_plan_table_pads_every_column_to_its_widest_value(write_grid, cli):
    grid_file = write_grid(TWO_MODELS.replace("SOURCE", "all").replace("[0, 1, 2]", "[0, 10]"))
    lines = cli("plan", grid_file).output.splitlines()
    assert lines[0] == "cell_id       dataset  model             attack  gradient_source  seed"
    assert lines[1:-1] == [f"{cell.cell_id}  digits   {str(cell.model):16}  {str(cell.attack):6}  all"
                           f"              {cell.seed}" for cell in load_grid(grid_file).cells]
    assert lines[-1] == "8 cells"


def test_plan_json_is_json_dumps_of_one_object_per_cell(write_grid, cli):
    grid_file = write_grid(MINIMAL_GRID)
    grid = load_grid(grid_file)
    expected = [{"cell_id": cell.cell_id, **{name: cell.factor_labels()[name] for name in grid.varied}}
                for cell in grid.cells]
    assert cli("plan", grid_file, "--format", "json").stdout == json.dumps(expected, indent=2) + "\n"


def test_plan_help_does_not_import_torch():
    code = "import sys; from evalgrid.cli import main; main(['plan', '--help'], standalone_mode=False); " \
           "print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False"


def test_a_mistyped_command_suggests_the_closest(cli):
    from click.testing import CliRunner

    from evalgrid.cli import main

    result = CliRunner().invoke(main, ["plna"])
    assert result.exit_code == 2 and "Did you mean 'plan'?" in result.output


# --------------------------------------------------------------------------- collect and load


def write_rows(out: OutputDir, cells, grid_name: str = "g", **changes) -> None:
    for cell in cells:
        row = empty_row()
        row.update(cell_id=cell.cell_id, grid=grid_name, config=cell.canonical_json(), status="done",
                   psnr_per_sample=[[1.0, 2.0]], recovered_labels=[1, 0], final_loss=0.5,
                   **cell.factor_labels())
        row.update(changes)
        write_result(out, row)


def test_reading_many_files_equals_reading_each_through_the_schema(tmp_path, write_grid):
    out = OutputDir(tmp_path / "out")
    write_rows(out, load_grid(write_grid(MINIMAL_GRID)).cells)
    older = out.done_result("0123456789ab")  # an older evalgrid's file: it lacks a column
    table = read_rows(out.result_files()[:1]).drop_columns(["final_loss"])
    pq.write_table(table.set_column(0, "cell_id", pa.array(["0123456789ab"])), older)
    files = out.result_files()
    expected = pa.concat_tables([pq.read_table(path, schema=result_schema()) for path in files])
    got = read_rows(files)
    assert got.schema.equals(result_schema(), check_metadata=True)
    assert str(got.to_pylist()) == str(expected.to_pylist())  # str: NaN == NaN
    assert got.column("final_loss").null_count == 1


def test_many_files_are_read_by_several_processes_into_the_same_rows_in_the_same_order(tmp_path, write_grid,
                                                                                       monkeypatch):
    import evalgrid.store.results as results

    out = OutputDir(tmp_path / "out")
    write_rows(out, load_grid(write_grid(MINIMAL_GRID)).cells)
    files = out.result_files()[::-1]
    alone = read_rows(files)
    monkeypatch.setattr(results, "FILES_PER_PROCESS", 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    pending = results.PendingRows(files)
    assert pending._pool is not None and len(pending._shares) >= 2, "the files are shared out"
    together = pending.result()
    assert str(together.to_pylist()) == str(alone.to_pylist())
    assert together.column("cell_id").to_pylist() == [path.stem for path in files]


def test_collect_writes_the_rows_in_grid_order(tmp_path, write_grid):
    cells = load_grid(write_grid(MINIMAL_GRID)).cells
    out = OutputDir(tmp_path / "out")
    write_rows(out, cells)
    collect(out, order=lambda: [cell.cell_id for cell in reversed(cells)])
    assert pq.read_table(out.results).column("cell_id").to_pylist() == [c.cell_id for c in reversed(cells)]


def test_load_orders_categories_as_the_grid_lists_them_then_by_appearance(tmp_path, write_grid):
    out = OutputDir(tmp_path / "out")
    cells = load_grid(write_grid(MINIMAL_GRID)).cells  # attack = ["idlg", { name = "ig", tv = 0.0 }]
    write_rows(out, cells)
    write_rows(out, cells[:1], attack="zzz", cell_id="000000000000")  # labels the grid does not list,
    write_rows(out, cells[:1], attack="dlg", cell_id="ffffffffffff")  # in file (cell id) order
    write_rows(out, cells[:1], attack=None, cell_id="0000000000bb")
    for listed in (["idlg", "ig(tv=0.0)"], ["ig(tv=0.0)", "idlg"]):
        attacks = '"idlg", { name = "ig", tv = 0.0 }' if listed[0] == "idlg" else '{ name = "ig", tv = 0.0 }, "idlg"'
        out.grid_toml.write_text(MINIMAL_GRID.replace('"idlg", { name = "ig", tv = 0.0 }', attacks))
        frame = evalgrid.load(out.root).set_index("cell_id")
        assert list(frame["attack"].cat.categories) == [*listed, "zzz", "dlg"]
    assert frame["attack"].isna().to_dict() == {cell_id: cell_id == "0000000000bb" for cell_id in frame.index}
    assert frame["seed"].dtype == "int64" and frame["knows_local_config"].dtype == "bool"


@pytest.mark.parametrize("path", GRID_FILES, ids=lambda p: str(p.relative_to(REPO / "grids")))
def test_factor_order_read_without_validating_matches_the_validated_values(path):
    grid = load_grid(path)
    assert factor_order(path) == {name: [str(factor_label(v)) for v in values] for name, values in grid.values.items()}


def test_factor_order_of_an_unreadable_grid_is_empty(tmp_path):
    (tmp_path / "grid.toml").write_text('name = "x"\n[factors]\nmodel = "lenet"\n')
    assert factor_order(tmp_path / "grid.toml") == {}
    assert factor_order(tmp_path / "missing.toml") == {}


def test_load_needs_no_torch(tmp_path, write_grid):
    out = OutputDir(tmp_path / "out")
    out.root.mkdir()
    (out.root / "grid.toml").write_text(MINIMAL_GRID)
    cells = load_grid(write_grid(MINIMAL_GRID)).cells
    out.cell_ids_file.write_text("".join(f"{cell.cell_id}\n" for cell in cells))  # as `run` leaves DIR
    write_rows(out, cells)
    code = f"import sys, evalgrid; evalgrid.load({str(out.root)!r}); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False"
