"""A damaged output directory heals: unreadable, foreign or misnamed result files are moved to
DIR/quarantine/ by the next run, which runs their cells again; readers skip them and say so; a
damaged results.parquet is read around; leftovers of killed writes are swept; rows of an earlier
grid in the same directory are left out unless asked for."""

from __future__ import annotations

import shutil
import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import evalgrid
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import ResultsNote, collect

GRID = """
name = "damaged"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["dlg"]
batch_size = [1]
seed = [0, 1]

[attacks.dlg]
iterations = 2
lbfgs_max_iter = 2
"""


@pytest.fixture
def ran(write_grid, cli, tmp_path):
    """A finished run of GRID: (grid file, DIR, its two cell ids, their PSNRs)."""
    grid = write_grid(GRID)
    out = OutputDir(tmp_path / "out")
    assert cli("run", grid, "--out", out.root, "--executor", "debug").exit_code == 0
    frame = evalgrid.load(out.root)
    return grid, out, sorted(frame["cell_id"]), dict(zip(frame["cell_id"], frame["psnr"]))


def notes(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    return value, [str(w.message) for w in caught if issubclass(w.category, ResultsNote)]


DAMAGE = {
    "zero bytes": lambda path: path.write_bytes(b""),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:-40]),
    "garbage": lambda path: path.write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1"),
    "a directory": lambda path: (path.unlink(), path.mkdir()),
    "another schema": lambda path: pq.write_table(pa.table({"x": [1, 2]}), path),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_result_is_skipped_by_readers_then_quarantined_and_rerun(ran, cli, damage):
    grid, out, (first, second), psnr = ran
    path = out.done_result(first)
    out.results.unlink()
    DAMAGE[damage](path)

    frame, said = notes(lambda: evalgrid.load(out.root))
    assert list(frame["cell_id"]) == [second] and any(str(path) in line for line in said)
    if damage == "garbage":  # the other readers, once (each CLI call costs seconds)
        assert cli("table", "sok_table1", out.root).exit_code in (0, 2)  # never a traceback (catch_exceptions=False)
        assert cli("status", out.root).exit_code == 0

    result = cli("run", grid, "--out", out.root, "--executor", "debug")
    assert result.exit_code == 0
    assert f"moved {path}" in result.output and "its cell will run again" in result.output
    moved = list(out.quarantine.iterdir())
    assert [entry.name for entry in moved] == [f"cells-{first}.parquet"]
    frame = evalgrid.load(out.root)
    assert sorted(frame["cell_id"]) == [first, second] and frame["status"].eq("done").all()
    assert dict(zip(frame["cell_id"], frame["psnr"])) == pytest.approx(psnr)  # the same cell, the same numbers


def test_a_copy_under_another_cells_name_is_not_a_second_row(ran, cli):
    grid, out, (first, second), _ = ran
    shutil.copy(out.done_result(first), out.done_result(second))  # second's file now holds first's row
    out.results.unlink()
    frame, said = notes(lambda: evalgrid.load(out.root))
    assert list(frame["cell_id"]) == [first]
    assert any(f"{out.done_result(second)}" in line and f"not the one row of cell {second}" in line for line in said)
    result = cli("collect", out.root)
    assert result.exit_code == 0 and f"moved {out.done_result(second)}" in result.output
    assert not out.done_result(second).exists()
    assert pq.read_table(out.results).column("cell_id").to_pylist() == [first]


def test_a_stray_file_whose_name_is_no_cell_id_is_moved_aside(ran, cli):
    grid, out, ids, _ = ran
    stray = out.cells / "notes.parquet"
    pq.write_table(pa.table({"x": [1]}), stray)
    result = cli("run", grid, "--out", out.root, "--executor", "debug")
    assert result.exit_code == 0 and f"moved {stray}" in result.output and "not a cell id" in result.output
    assert sorted(evalgrid.load(out.root)["cell_id"]) == ids


def test_a_damaged_results_file_newer_than_the_cells_is_read_around_and_rebuilt(ran, cli):
    grid, out, ids, _ = ran
    out.results.write_bytes(b"not parquet at all")
    frame, said = notes(lambda: evalgrid.load(out.root))
    assert sorted(frame["cell_id"]) == ids
    assert any(f"{out.results} cannot be read" in line for line in said)
    assert cli("collect", out.root).exit_code == 0
    assert sorted(pq.read_table(out.results).column("cell_id").to_pylist()) == ids


def test_a_run_with_nothing_to_run_keeps_a_whole_results_file_and_rebuilds_any_other(ran, cli, write_grid):
    """Reading every result file again would cost minutes at 100,000 cells, so a run that ran
    nothing keeps DIR/results.parquet when it is newer than the cells and DIR/cell_ids.txt and
    holds one row per current cell; garbage, a missing row or another grid's cells make it collect."""
    grid, out, ids, _ = ran

    def rerun(grid_file=grid):
        before = out.results.stat().st_mtime_ns
        assert cli("run", grid_file, "--out", out.root, "--executor", "debug").exit_code == 0
        rows = pq.read_table(out.results).column("cell_id").to_pylist()
        return out.results.stat().st_mtime_ns != before, sorted(rows)

    assert rerun() == (False, ids)
    out.results.write_bytes(b"PAR1" + bytes(100) + b"PAR1")
    assert rerun() == (True, ids)
    assert rerun() == (False, ids)
    data = bytearray(out.results.read_bytes())  # bytes changed inside the pages, the footer intact
    footer = int.from_bytes(data[-8:-4], "little")
    for offset in range(8, len(data) - footer - 8, 97):
        data[offset] ^= 0x5A
    out.results.write_bytes(bytes(data))
    frame, said = notes(lambda: evalgrid.load(out.root))
    assert sorted(frame["cell_id"]) == ids and any("cannot be read" in line for line in said)
    assert rerun() == (True, ids)
    pq.write_table(pq.read_table(out.results).slice(0, 1), out.results)  # whole, readable, one row short
    assert rerun() == (True, ids)
    one_seed = write_grid(GRID.replace("seed = [0, 1]", "seed = [0]"), name="one_seed.toml")
    changed, subset = rerun(one_seed)
    assert changed and len(subset) == 1 and subset[0] in ids
    assert rerun() == (True, ids)  # back to both seeds: nothing ran, but the cells changed


def test_leftovers_of_killed_writes_are_swept_at_any_depth_but_not_in_the_stage_cache(ran, cli):
    grid, out, _, _ = ran
    leftovers = [out.root / ".grid.toml.tmp-abc", out.root / ".results.parquet.tmp-abc",
                 out.artifacts_root / "x" / "deep" / ".recon.png.tmp-abc", out.checkpoints / ".a.pt.tmp-abc"]
    kept = out.stages / ".model.pt.tmp-abc"  # a concurrent stage training's: swept under the stage lock
    for path in [*leftovers, kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    assert cli("run", grid, "--out", out.root, "--executor", "debug").exit_code == 0
    assert not any(path.exists() for path in leftovers) and kept.exists()


def test_rows_of_an_earlier_grid_are_left_out_unless_asked_for(ran, cli, write_grid):
    grid, out, old_ids, _ = ran
    changed = write_grid(GRID.replace("iterations = 2", "iterations = 3"), name="changed.toml")
    assert cli("run", changed, "--out", out.root, "--executor", "debug").exit_code == 0
    frame, said = notes(lambda: evalgrid.load(out.root))
    assert len(frame) == 2 and set(frame["cell_id"]).isdisjoint(old_ids)
    assert any("left out 2 rows" in line for line in said)
    everything = evalgrid.load(out.root, stale=True)
    assert len(everything) == 4 and everything["stale"].dtype == bool
    assert sorted(everything.loc[everything["stale"], "cell_id"]) == old_ids
    _, said = notes(lambda: collect(out))
    assert any("left out 2 rows" in line for line in said)
    assert len(pd.read_parquet(out.results)) == 2
    result = cli("table", "sok_table1", out.root)
    assert "Traceback" not in result.output
    for damage in (b"", b"\xff\xfe not ids"):  # DIR/cell_ids.txt damaged: the ids come from grid.toml
        out.cell_ids_file.write_bytes(damage)
        frame, said = notes(lambda: evalgrid.load(out.root, stale=True))
        assert sorted(frame.loc[frame["stale"], "cell_id"]) == old_ids


def test_an_output_path_under_a_file_is_one_paragraph_and_exit_code_2(write_grid, cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = cli("run", write_grid(GRID), "--out", blocker / "out", "--executor", "debug")
    assert result.exit_code == 2
    assert f"{blocker / 'out'}: the output directory cannot be used" in result.output
    assert "Traceback" not in result.output


def test_a_full_disk_stops_the_run_with_one_paragraph_and_a_rerun_completes(write_grid, cli, tmp_path, monkeypatch):
    import errno
    import os

    import evalgrid.evaluation.pipeline as evaluate

    grid = write_grid(GRID)
    out = OutputDir(tmp_path / "out")
    written = []

    def full_after_one(target_out, row):
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target_out.done_result(row["cell_id"])))
        written.append(row["cell_id"])
        return real(target_out, row)

    real = evaluate.write_result
    monkeypatch.setattr(evaluate, "write_result", full_after_one)
    result = cli("run", grid, "--out", out.root, "--executor", "debug")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "No space left on device" in result.output and "1 cells are not run" in result.output
    assert out.done_ids() == set(written) and not out.failed_ids()  # no failure row for a cell that did not fail
    assert not [path for path in out.root.rglob("*") if ".tmp-" in path.name]

    monkeypatch.setattr(evaluate, "write_result", real)  # space freed
    assert cli("run", grid, "--out", out.root, "--executor", "debug").exit_code == 0
    assert len(evalgrid.load(out.root)) == 2


def test_a_worker_that_reports_a_full_disk_stops_the_local_executor():
    from multiprocessing import Pipe
    from types import SimpleNamespace

    from evalgrid.errors import OutputFull
    from evalgrid.executors.local import _receive

    launcher, worker_end = Pipe()
    worker_end.send(OutputFull("0123456789ab", "No space left on device (DIR)"))  # pickled as a worker sends it
    with pytest.raises(OutputFull, match="writing cell 0123456789ab's files failed: No space left on device"):
        _receive(SimpleNamespace(conn=launcher, process=None, task=None))


def test_a_stage_cache_the_grid_puts_inside_dir_is_left_to_its_own_lock(write_grid, cli, tmp_path):
    out = OutputDir(tmp_path / "out")
    cache = out.root / "shared" / "models"
    grid = write_grid(GRID + f'\n[run]\nstage_cache = "{cache}"\n')
    kept, swept = cache / ".model.pt.tmp-abc", out.root / "shared" / "other" / ".x.tmp-abc"
    for path in (kept, swept):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half")
    assert cli("run", grid, "--out", out.root, "--executor", "debug").exit_code == 0
    assert kept.exists()  # the whole folder holding the cache is left alone, this one too:
    assert swept.exists()  # only top-level folders of DIR that hold no stage cache are swept
