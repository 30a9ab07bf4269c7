"""Progress inside long cells: the process running a cell keeps DIR/running/<id>.json (trial,
iteration, the attack's latest loss), throttled, and removes it when the cell ends; the run's
progress line and `evalgrid status` show the running cells from it, and ignore a file that is
stale, damaged or of a cell that is done."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import time

import pytest

from attacking import stop_at_the_nth_step
from evalgrid.attacks.inverting_gradients import InvertingGradients
from evalgrid.evaluation.checkpoint import Interrupted, clear_stop
from evalgrid.evaluation.context import CellContext
from evalgrid.evaluation.pipeline import execute_cell
from evalgrid.executors.debug import Ticker
from evalgrid.grid import load_grid
from evalgrid.launch import progress as progress_line
from evalgrid.launch.progress import RunProgress
from evalgrid.launch.provenance import current_provenance
from evalgrid.launch.runner import running_cells_tick
from evalgrid.store import cell_progress
from evalgrid.store.cell_progress import (MAX_BYTES, CellProgress, CellProgressWriter, read_running, remove_leftovers,
                                          this_host)
from evalgrid.store.layout import OutputDir

GRID = """
name = "progress"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["lenet"]
attack = [{attack}]
batch_size = [1]
trials = [2]
seed = [0, 1, 2]

[attacks.ig]
iterations = 10
"""


def _cell_and_context(write_grid, tmp_path, attack='"ig"'):
    grid = load_grid(write_grid(GRID.format(attack=attack)))
    context = CellContext(out_root=tmp_path / "out", grid_name=grid.name, data_root=None, device="cpu",
                          provenance=current_provenance())
    return grid.cells[0], context


def test_the_file_holds_the_running_trial_its_iteration_and_the_loss_of_its_last_step(
        write_grid, tmp_path, monkeypatch):
    monkeypatch.setattr(cell_progress, "WRITE_INTERVAL_S", 0.0)  # every step is written
    cell, context = _cell_and_context(write_grid, tmp_path)
    path = OutputDir(context.out_root).cell_progress(cell.cell_id)
    seen, steps, real = {}, {"taken": 0}, InvertingGradients.step

    def step(self, view, state):  # before the 2nd step of each trial, the file holds the 1st
        steps["taken"] += 1
        if steps["taken"] in (2, 12):
            seen[steps["taken"]] = json.loads(path.read_text()), sum(state.first_terms.values())
        real(self, view, state)

    monkeypatch.setattr(InvertingGradients, "step", step)
    assert execute_cell(cell, context).status == "done"
    for at, trial in ((2, 0), (12, 1)):
        written, first_step_loss = seen[at]
        assert (written["cell_id"], written["phase"], written["trial"], written["trials"]) == (
            cell.cell_id, "attacking", trial, 2)
        assert (written["iteration"], written["iterations"]) == (1, 10)
        assert written["loss"] == pytest.approx(first_step_loss, rel=1e-5)  # the trial's first objective
        assert (written["host"], written["pid"]) == (this_host(), os.getpid())
    assert not path.exists()  # the cell is done: its file is gone


def test_the_file_is_removed_when_the_cell_fails(write_grid, tmp_path):
    cell, context = _cell_and_context(write_grid, tmp_path, attack='{ name = "ig", lr = 1e300 }')
    assert execute_cell(cell, context).status == "failed"
    assert not OutputDir(context.out_root).cell_progress(cell.cell_id).exists()


def test_the_file_is_removed_when_the_cell_is_stopped_mid_attack(write_grid, tmp_path, monkeypatch):
    cell, context = _cell_and_context(write_grid, tmp_path)
    clear_stop()
    stop_at_the_nth_step(monkeypatch, InvertingGradients)(5)
    try:
        with pytest.raises(Interrupted):
            execute_cell(cell, context)
    finally:
        clear_stop()
    out = OutputDir(context.out_root)
    assert out.checkpoint(cell.cell_id).is_file() and not out.cell_progress(cell.cell_id).exists()


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_steps_are_written_at_most_every_two_seconds_and_a_trial_start_at_once(tmp_path):
    clock = FakeClock()
    path = tmp_path / "running" / "0123456789ab.json"
    writer = CellProgressWriter(path, "0123456789ab", trials=2, clock=clock).begin()
    assert json.loads(path.read_text())["phase"] == "preparing" and writer.writes == 1
    clock.now = 0.5
    writer.trial_started(0, 1, 300)
    for step, clock.now in ((1, 0.6), (2, 2.4), (3, 2.5), (4, 4.4), (5, 4.5)):
        writer.stepped(step, 0.5 / step)
    assert writer.writes == 4  # begin, the trial, steps 3 (2.5 >= 0.5 + 2) and 5 (4.5 >= 2.5 + 2)
    assert json.loads(path.read_text())["iteration"] == 5 and json.loads(path.read_text())["loss"] == 0.1
    clock.now = 4.6  # a trial that starts right after a write waits for the next one
    writer.trial_started(1, 1, 300)
    assert writer.writes == 4
    clock.now = 4.8
    writer.trial_started(1, 1, 300)
    assert writer.writes == 5 and json.loads(path.read_text())["trial"] == 1
    writer.phase("scoring")  # a phase at once
    assert writer.writes == 6 and json.loads(path.read_text())["phase"] == "scoring"
    writer.end()
    assert not path.exists()


def test_a_stacked_chunks_loss_is_the_mean_over_its_lanes(tmp_path):
    clock = FakeClock()
    path = tmp_path / "0123456789ab.json"
    writer = CellProgressWriter(path, "0123456789ab", trials=4, clock=clock).begin()
    writer.trial_started(0, 2, 100, lanes=4)  # two trials of two restarts each, side by side
    clock.now = 5.0
    writer.stepped(7, 2.0)  # the step checked the sum of the four lanes' losses
    written = CellProgress.from_json(path.read_text(), "0123456789ab")
    assert (written.loss, written.describe()) == (0.5, "trials 1-2/4 it 7/100 loss 5.00e-01")


def _progress(cell_id: str, **changes) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    body = {"schema": 1, "cell_id": cell_id, "phase": "attacking", "trial": 0, "trials": 2, "stacked": 1,
            "iteration": 150, "iterations": 300, "loss": 1.234e-3, "host": this_host(), "pid": os.getpid(),
            "started_at": (now - dt.timedelta(seconds=40)).isoformat(),
            "updated_at": (now - dt.timedelta(seconds=3)).isoformat()}
    return {**body, **changes}


@pytest.fixture
def out_dir(write_grid, tmp_path):
    """An output directory of the grid's three cells, none run: (OutputDir, the cells' ids)."""
    grid = load_grid(write_grid(GRID.format(attack='"ig"')))
    out = OutputDir(tmp_path / "out")
    out.root.mkdir()
    out.grid_toml.write_text(GRID.format(attack='"ig"'))
    ids = [cell.cell_id for cell in grid.cells]
    out.cell_ids_file.write_text("".join(f"{i}\n" for i in ids))
    out.running.mkdir()
    return out, ids


def _write(out: OutputDir, body: dict) -> None:
    out.cell_progress(body["cell_id"]).write_text(json.dumps(body))


def _gone_pid() -> int:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(ended.stdout)


def test_status_lists_a_running_cell_with_its_trial_iteration_loss_and_age(out_dir, cli):
    out, (running, _, _) = out_dir
    _write(out, _progress(running))
    shown = cli("status", out.root)
    assert shown.exit_code == 0
    assert re.search(rf"{running} trial 1/2 it 150/300 loss 1\.23e-03, updated [34]s ago \({this_host()}, "
                     rf"pid {os.getpid()}, started 4[01]s ago\)\n", shown.output), shown.output
    assert "stale" not in shown.output
    assert f"cell {running}: running" in cli("status", out.root, "--cell", running).output


def test_status_flags_stale_files_and_ignores_a_done_cells(out_dir, cli):
    out, (old, gone, done) = out_dir
    long_ago = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).isoformat()
    _write(out, _progress(old, host="another-node", updated_at=long_ago))
    _write(out, _progress(gone, pid=_gone_pid()))
    _write(out, _progress(done))
    out.cells.mkdir()
    out.done_result(done).touch()
    shown = cli("status", out.root)
    assert re.search(rf"{old} .*; stale\? no update for 10m0[01]s\n", shown.output), shown.output
    assert re.search(rf"{gone} .*; stale: its process is gone\n", shown.output), shown.output
    assert f"{done} trial" not in shown.output and "running now (2," in shown.output


def test_status_ignores_damaged_or_hostile_files_with_one_note(out_dir, cli):
    out, (not_json, huge, wrong_types) = out_dir
    out.cell_progress(not_json).write_text("{trial: 1")
    out.cell_progress(huge).write_text(json.dumps(_progress(huge, host="x" * MAX_BYTES)))
    _write(out, _progress(wrong_types, iteration="many", loss=True))
    os.mkfifo(out.running / "ffffffffffff.json")  # opening a FIFO to read would block
    (out.running / "eeeeeeeeeeee.json").symlink_to("/dev/zero")
    shown = cli("status", out.root)
    assert shown.exit_code == 0 and "running now" not in shown.output
    notes = [line for line in shown.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].startswith("note: ignored a damaged progress file, ")
    assert notes[0].endswith(" and 2 more"), shown.output
    everything = read_running(out)  # the FIFO and the link too, when no ids narrow the search
    assert everything.cells == {} and sorted(everything.damaged) == sorted([
        "eeeeeeeeeeee.json: cannot be opened (Too many levels of symbolic links)",
        "ffffffffffff.json: not a regular file", f"{not_json}.json: not JSON",
        f"{huge}.json: larger than {MAX_BYTES} bytes", f"{wrong_types}.json: 'iteration' is missing or not valid"])


@pytest.mark.parametrize("columns, shown", [
    (200, "[........................] 0 done, 0 failed, 3 remaining, ETA ? | {id}… trial 1/2 it 150/300 loss 1.2e-03 "
          "(+1 more)"),
    (80, "[........] 0 done, 3 left, ETA ? | {id}… trial 1/2 it 150/300 loss 1.2e-03"),  # fits 79 characters
])
def test_on_a_terminal_the_bar_shows_the_longest_running_cell(out_dir, monkeypatch, columns, shown):
    out, (first, second, _) = out_dir

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(progress_line, "terminal_columns", lambda stream: columns)
    line = Terminal()
    later = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)).isoformat()
    _write(out, _progress(first))
    _write(out, _progress(second, started_at=later, phase="preparing"))
    RunProgress(3, line).show_running(read_running(out).live(dt.datetime.now(dt.timezone.utc), this_host()))
    assert line.getvalue() == "\r" + shown.format(id=first[:6]) + "\033[K"


def test_off_a_terminal_a_running_cell_gets_a_line_after_five_seconds_then_every_thirty(out_dir):
    out, (cell_id, _, _) = out_dir
    clock, log = FakeClock(), io.StringIO()
    progress = RunProgress(3, log, clock=clock)
    cell = CellProgress.from_json(json.dumps(_progress(cell_id)), cell_id)
    lines = []
    for clock.now in (0, 4, 5, 20, 34, 35, 40, 65):
        progress.show_running([cell])
        lines.append(log.getvalue().count("\n"))
    assert lines == [0, 0, 1, 1, 1, 2, 2, 3]
    assert log.getvalue().splitlines()[0] == f"  running {cell_id}: trial 1/2 it 150/300 loss 1.23e-03"


def test_the_runs_tick_hands_on_only_its_own_live_cells_at_most_twice_a_second(out_dir):
    out, (live, gone, done) = out_dir
    other = "abcdefabcdef"  # a cell of no run of this directory's (e.g. one Slurm holds)
    for body in (_progress(live), _progress(gone, pid=_gone_pid()), _progress(done), _progress(other)):
        _write(out, body)
    out.cells.mkdir()
    out.done_result(done).touch()
    clock, seen = FakeClock(), []
    tick = running_cells_tick(out, [live, gone, done], seen.append, clock)
    tick()
    clock.now = 0.3
    tick()
    assert [[cell.cell_id for cell in cells] for cells in seen] == [[live]]


def test_a_new_run_removes_the_files_left_by_a_killed_one(out_dir):
    out, (about_to_run, held_elsewhere, done) = out_dir
    for cell_id in (about_to_run, held_elsewhere, done):
        _write(out, _progress(cell_id))
    out.cells.mkdir()
    out.done_result(done).touch()
    remove_leftovers(out, [about_to_run])
    assert sorted(p.stem for p in out.running.iterdir()) == [held_elsewhere]


def test_the_debug_executors_ticker_calls_until_the_block_ends():
    ticks, deadline = [], time.monotonic() + 5
    with Ticker(lambda: ticks.append(1), interval_s=0.01):
        while len(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    ended = len(ticks)
    time.sleep(0.05)
    assert ended >= 3 and len(ticks) == ended
