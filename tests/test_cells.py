"""Cells: the product of factors, zip and exclude; ids that identify the resolved config."""

from __future__ import annotations

import re

from conftest import MINIMAL_GRID
from evalgrid.grid import load_grid

# The id of one fixed config, the same on every machine. If it changes, output directories made
# by earlier versions stop resuming: a change must be deliberate (new options, CONFIG_SCHEMA).
GOLDEN_GRID = """
name = "golden"
metrics = ["psnr"]
[factors]
dataset = ["digits"]
model = ["lenet"]
attack = [{ name = "idlg", iterations = 7 }]
batch_size = [2]
labels = ["inferred"]
seed = [3]
"""
# Changes only when what the config resolves to changes: dc988b874167 until FedSGD's default
# bn_mode became eval (issue 14: the reference attacks compute the update in eval mode).
GOLDEN_ID = "a47772265fd3"


def ids(grid_path):
    return [cell.cell_id for cell in load_grid(grid_path).cells]


def test_cell_id_is_twelve_hex_characters(write_grid):
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids(write_grid(MINIMAL_GRID)))


def test_cell_id_of_a_fixed_config_never_changes(write_grid):
    cell = load_grid(write_grid(GOLDEN_GRID)).cells[0]
    assert cell.cell_id == GOLDEN_ID, cell.canonical_json()


def test_same_grid_gives_the_same_ids(write_grid):
    path = write_grid(MINIMAL_GRID)
    assert ids(path) == ids(path)


def test_factor_order_in_the_file_does_not_change_ids(write_grid):
    shuffled = MINIMAL_GRID.replace('dataset = ["digits"]\n', "").replace("seed = [0]", 'seed = [0]\ndataset = ["digits"]')
    assert set(ids(write_grid(MINIMAL_GRID, "a.toml"))) == set(ids(write_grid(shuffled, "b.toml")))


def test_changing_a_hyperparameter_changes_only_the_affected_ids(write_grid):
    base = load_grid(write_grid(MINIMAL_GRID, "a.toml")).cells
    changed = load_grid(write_grid(MINIMAL_GRID.replace("[attacks.ig]\niterations = 3",
                                                        "[attacks.ig]\niterations = 4"), "b.toml")).cells
    for before, after in zip(base, changed):
        assert (before.cell_id == after.cell_id) == (before.attack.name != "ig")


def test_override_and_inline_option_give_the_same_cell(write_grid):
    inline = MINIMAL_GRID.replace("[attacks.idlg]\niterations = 3", "").replace('"idlg"', '{ name = "idlg", iterations = 3 }')
    assert ids(write_grid(MINIMAL_GRID, "a.toml")) == ids(write_grid(inline, "b.toml"))


def test_run_slurm_and_data_sections_do_not_change_ids(write_grid):
    extra = MINIMAL_GRID + '\n[run]\nworkers = 2\n[slurm]\npartition = "gpu"\n[data]\nroot = "/data"\n'
    assert ids(write_grid(MINIMAL_GRID, "a.toml")) == ids(write_grid(extra, "b.toml"))


def test_metrics_are_part_of_the_cell(write_grid):
    other = MINIMAL_GRID.replace('metrics = ["psnr", "ssim", "label_acc"]', 'metrics = ["psnr"]')
    assert set(ids(write_grid(MINIMAL_GRID, "a.toml"))).isdisjoint(ids(write_grid(other, "b.toml")))


def test_grid_is_the_product_of_its_factor_lists(write_grid):
    grid = load_grid(write_grid(MINIMAL_GRID.replace("seed = [0]", "seed = [0, 1, 2]")))
    assert len(grid.cells) == 2 * 2 * 3


def test_zip_varies_factors_together(write_grid):
    text = MINIMAL_GRID.replace('name = "tiny"', 'name = "tiny"\nzip = [["batch_size", "seed"]]') \
        .replace("batch_size = [1]", "batch_size = [1, 2]").replace("seed = [0]", "seed = [10, 20]")
    pairs = {(c.batch_size, c.seed) for c in load_grid(write_grid(text)).cells}
    assert pairs == {(1, 10), (2, 20)}


def test_exclude_drops_combinations_matching_every_key(write_grid):
    text = MINIMAL_GRID.replace("batch_size = [1]", "batch_size = [1, 4]") + \
        '\n[[exclude]]\nattack = "idlg"\nbatch_size = 4\n'
    cells = load_grid(write_grid(text)).cells
    assert len(cells) == 2 * 2 * 2 - 2
    assert not any(c.attack.name == "idlg" and c.batch_size == 4 for c in cells)


def test_exclude_by_name_matches_every_variant_and_inline_only_its_own(write_grid):
    grid = MINIMAL_GRID.replace('attack = ["idlg", { name = "ig", tv = 0.0 }]', 'attack = ["ig", { name = "ig", tv = 0.0 }]')
    by_name = load_grid(write_grid(grid + '\n[[exclude]]\nattack = "ig"\nlabels = "known"\n', "a.toml")).cells
    assert {c.labels for c in by_name} == {"inferred"}
    inline = load_grid(write_grid(grid + '\n[[exclude]]\nattack = { name = "ig", tv = 0.0 }\n', "b.toml")).cells
    assert {str(c.attack) for c in inline} == {"ig"}


def test_exclude_accepts_a_list_of_alternatives(write_grid):
    text = MINIMAL_GRID.replace("seed = [0]", "seed = [0, 1, 2]") + "\n[[exclude]]\nseed = [0, 2]\n"
    assert {c.seed for c in load_grid(write_grid(text)).cells} == {1}


def test_factor_labels_are_written_as_in_the_grid(write_grid):
    labels = {str(c.attack) for c in load_grid(write_grid(MINIMAL_GRID)).cells}
    assert labels == {"idlg", "ig(tv=0.0)"}


def test_extends_merges_tables_and_the_extending_file_wins(write_grid):
    write_grid(MINIMAL_GRID, "base.toml")
    child = write_grid('extends = "base.toml"\nname = "child"\n[factors]\nseed = [5, 6]\n[attacks.ig]\ntv = 0.5\n',
                       "child.toml")
    grid = load_grid(child)
    assert grid.name == "child"
    assert {c.seed for c in grid.cells} == {5, 6}
    ig = [c for c in grid.cells if c.attack.name == "ig"]
    assert all(c.attack.options.iterations == 3 for c in ig), "base overrides survive the merge"
    assert all(c.attack.options.tv == 0.0 for c in ig), "the inline option wins over [attacks.ig]"


def test_defaults_fill_factors_the_grid_does_not_list(write_grid):
    text = MINIMAL_GRID.replace("batch_size = [1]\n", "").replace('labels = ["known", "inferred"]\n', "")
    cells = load_grid(write_grid(text)).cells
    assert {(c.batch_size, c.labels, c.seed) for c in cells} == {(1, "inferred", 0)}


def test_the_quickstart_grid_is_valid():
    from pathlib import Path

    grid = load_grid(Path(__file__).parent.parent / "grids" / "quickstart.toml")
    assert len(grid.cells) > 0 and grid.data_root is None


def test_excluding_a_defense_by_name_drops_its_every_variant_but_not_compositions(write_grid):
    grid = MINIMAL_GRID.replace('seed = [0]', 'seed = [0]\ndefense = ["none", "qsgd", { name = "qsgd", bits = 1 }, '
                                              '["topk", "qsgd"]]') + '\n[[exclude]]\ndefense = "qsgd"\n'
    defenses = {str(cell.defense) for cell in load_grid(write_grid(grid)).cells}
    assert defenses == {"none", "topk + qsgd"}
