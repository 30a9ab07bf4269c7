"""What a new user meets first: `weights fetch` without a network, the reconstruction picture's
title, `run` without --out, and a smoke table that says which stand-in measured each row.

Downloads go to real sockets on this machine (a closed port, a local HTTP server that misbehaves
on purpose); nothing reaches the internet."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from evalgrid.errors import UserError
from evalgrid.evaluation.artifacts import GAP, TITLE_MIN_WIDTH, picture_title, reconstruction_png
from evalgrid.models.weights import WEIGHTS, WeightsFile, fetch_weights


def invoke(*args):
    from evalgrid.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- evalgrid weights fetch ---------------------------------------------------------------------

def state_dict_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.arange(6.0).view(2, 3)}, buffer)
    return buffer.getvalue()


STATE = state_dict_bytes()
STATE_HASH = hashlib.sha256(STATE).hexdigest()[:8]


class Misbehaving(BaseHTTPRequestHandler):
    """Serves /<how>/<file>: how the server answers is the first part of the path."""

    def do_GET(self):  # noqa: N802 - http.server's name
        how = self.path.split("/")[1]
        if how == "missing":
            self.send_error(404, "Not Found")
            return
        body = {"short": b"0123456789", "state": STATE, "garbage": b"<html>not a state dict</html>"}[how]
        self.send_response(200)
        self.send_header("Content-Length", str(1000 if how == "short" else len(body)))  # short: cut off
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def alexnet_from(monkeypatch):
    """alexnet_from(url): the registry's alexnet entry downloads from ``url`` (restored after)."""
    def point(url: str) -> Path:
        monkeypatch.setitem(WEIGHTS._entries, "alexnet", WeightsFile("alexnet", url, "LPIPS (a test)"))
        return Path(url.rsplit("/", 1)[1])

    return point


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: a connection is refused, as with no network
    return port


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def assert_one_paragraph_about(output: str, path: Path, url: str, reason: str) -> None:
    assert "Traceback" not in output
    lines = [line for line in output.strip().splitlines() if "%|" not in line]  # all but the progress bar
    assert len(lines) == 1 and lines[0].startswith("error: could not download "), output
    assert str(path) in output and url in output and reason in output, output
    assert "TORCH_HOME" in output and "evalgrid weights fetch alexnet" in output


def test_fetch_without_a_network_is_one_paragraph_and_leaves_nothing(torch_home, alexnet_from):
    url = f"http://127.0.0.1:{closed_port()}/alexnet-owt-7be5be79.pth"
    filename = alexnet_from(url)
    result = invoke("weights", "fetch", "alexnet", "resnet18")
    assert result.exit_code == 2
    assert_one_paragraph_about(result.output, torch_home / "hub" / "checkpoints" / filename, url,
                               "connection was refused")
    assert "Not tried after it: resnet18." in result.output
    assert files_under(torch_home) == []


@pytest.mark.parametrize("how, filename, reason", [
    ("missing", "alexnet-owt-7be5be79.pth", "HTTP 404"),
    ("short", "w.pth", "ended"),  # 10 of the 1,000 bytes announced
    ("state", "w-00000000.pth", "SHA-256 starts"),  # a whole file, but not the one its name's hash announces
    ("garbage", "w.pth", "not a readable state dict"),  # no hash in the name: loading it tells
])
def test_a_failed_download_is_one_paragraph_and_leaves_nothing(torch_home, alexnet_from, server, how, filename,
                                                               reason):
    url = f"{server}/{how}/{filename}"
    alexnet_from(url)
    result = invoke("weights", "fetch", "alexnet")
    assert result.exit_code == 2
    assert_one_paragraph_about(result.output, torch_home / "hub" / "checkpoints" / filename, url, reason)
    assert files_under(torch_home) == []


def test_a_stalled_download_gives_up_after_the_timeout(torch_home, alexnet_from):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts the connection, never answers
    try:
        alexnet_from(f"http://127.0.0.1:{listener.getsockname()[1]}/w.pth")
        started = time.perf_counter()
        with pytest.raises(UserError, match=r"no answer for 0\.3 s"):
            fetch_weights("alexnet", progress=False, timeout_s=0.3)
        assert time.perf_counter() - started < 5
    finally:
        listener.close()
    assert files_under(torch_home) == []


def test_a_cache_that_cannot_be_written_is_one_paragraph(torch_home, alexnet_from, server):
    (torch_home / "hub").mkdir(parents=True)
    (torch_home / "hub" / "checkpoints").write_text("a file where the cache folder belongs")
    alexnet_from(f"{server}/state/w-{STATE_HASH}.pth")
    result = invoke("weights", "fetch", "alexnet")
    assert result.exit_code == 2
    assert_one_paragraph_about(result.output, torch_home / "hub" / "checkpoints" / f"w-{STATE_HASH}.pth",
                               f"{server}/state/w-{STATE_HASH}.pth", "cannot write")


def test_a_good_download_lands_whole_under_its_name(torch_home, alexnet_from, server):
    filename = alexnet_from(f"{server}/state/w-{STATE_HASH}.pth")
    result = invoke("weights", "fetch", "alexnet")
    assert result.exit_code == 0, result.output
    path = torch_home / "hub" / "checkpoints" / filename
    assert files_under(torch_home) == [path] and path.read_bytes() == STATE


# --- the reconstruction picture's title ---------------------------------------------------------

TINY_GRID = """
name = "../../etc/first contact"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = [{ name = "convnet", width = 4 }]
attack = ["ig"]
batch_size = [1]
labels = ["known"]
seed = [3]

[attacks.ig]
iterations = 2

[run]
executor = "debug"
threads_per_worker = 1
"""


@pytest.fixture
def tiny_cell(tmp_path):
    from evalgrid.grid import load_grid

    path = tmp_path / "tiny.toml"
    path.write_text(TINY_GRID)
    (cell,) = load_grid(path).cells
    return cell


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_a_one_digit_picture_gets_a_readable_title_band(tiny_cell):
    digit = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    title = picture_title(tiny_cell, 1, 2, "best PSNR")
    plain = decode(reconstruction_png(digit, digit, ["12.3 dB"]))
    titled = decode(reconstruction_png(digit, digit, ["12.3 dB"], title))
    assert titled.info["Description"] == title  # the PNG's tEXt chunk: the same text, exactly
    assert title.splitlines() == [
        f"cell {tiny_cell.cell_id}: dataset digits, model convnet(width=4), attack ig, batch_size 1, defense none, "
        f"labels known, seed 3",
        "top: originals (private); bottom: reconstructions (trial 2 of 2, best PSNR)"]
    assert plain.width == 64 + 2 * GAP and titled.width == TITLE_MIN_WIDTH  # widened for the text
    assert titled.height > plain.height
    pixels = np.asarray(titled)
    np.testing.assert_array_equal(pixels[:plain.height, :plain.width], np.asarray(plain))  # tiles untouched
    band = pixels[plain.height:]
    assert band.std() > 10 and band.min() < 128  # dark text drawn on the white band


def test_a_long_title_wraps_onto_more_lines_within_the_width(tiny_cell):
    images = torch.rand((2, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    short = decode(reconstruction_png(images, images, title="cell abc"))
    long = decode(reconstruction_png(images, images, title="factor value, " * 40 + "x" * 120))
    assert long.width == short.width == TITLE_MIN_WIDTH
    assert long.height >= short.height + 5 * 10  # 560 + 120 characters: many more lines of ~10 pixels
    band = np.asarray(long.convert("L"))[short.height - 20:]
    assert band[:, -GAP:].min() == 255  # nothing drawn past the right margin


# --- evalgrid run without --out -----------------------------------------------------------------

def test_run_without_out_writes_into_runs_named_after_the_grid(tmp_path, monkeypatch):
    """The grid's hostile name becomes one safe folder below runs/, printed at the start; the
    cell's picture carries its title."""
    (tmp_path / "tiny.toml").write_text(TINY_GRID)
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "tiny.toml")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "output: runs/etc-first-contact"
    out = tmp_path / "runs" / "etc-first-contact"
    assert (out / "results.parquet").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["runs", "tiny.toml"]
    (picture,) = out.glob("artifacts/*/reconstruction.png")
    assert decode(picture.read_bytes()).info["Description"].startswith(f"cell {picture.parent.name}: dataset digits")


@pytest.mark.parametrize("name, folder", [
    ("quickstart", "quickstart"),
    ("../../etc", "etc"),
    ("SoK Table 1 / smoke", "SoK-Table-1-smoke"),
    ("v1.2_final", "v1.2_final"),
    ("..", "g"),  # nothing left: the grid file's name
    ("/\\:*", "g"),
])
def test_the_default_output_folder_is_one_safe_name_below_runs(name, folder):
    from evalgrid.cli.run import default_out_dir

    out = default_out_dir(name, Path("grids/g.toml"))
    assert out == Path("runs") / folder and len(out.parts) == 2


# --- evalgrid table: rows measured on a stand-in ------------------------------------------------

DEFINITION = """
title = "Stand-ins (a test table)"
paper = "A paper, Table 1"
grid = "grid.toml"
published = "published.csv"
rows = ["dataset", "attack"]
columns = ["batch"]

[keys.dataset]
factor = "dataset"
stand_in = { digits = "cifar10" }

[keys.attack]
factor = "attack"
map = { ig = "GIA-O" }              # another name of the same attack: not a stand-in

[keys.batch]
factor = "batch_size"
stand_in = { "1" = 16 }

[values.psnr]
measured = "psnr"
"""


def stand_in_table(tmp_path, dataset: str, psnrs: list[float]):
    """The table regenerated from done cells of ``dataset`` at batch size 1, one PSNR each."""
    from evalgrid.tables import RegeneratedTable
    from evalgrid.tables.compare import compare, read_published
    from evalgrid.tables.definition import read_definition
    from evalgrid.tables.measure import aggregate, measured_columns, measured_long

    (tmp_path / "grid.toml").write_text('name = "g"\n')
    (tmp_path / "published.csv").write_text("dataset,attack,batch,psnr\ncifar10,GIA-O,16,20.0\n")
    (tmp_path / "t.toml").write_text(DEFINITION)
    definition = read_definition(tmp_path / "t.toml")
    config = {"dataset": {"name": dataset, "options": {}}, "attack": {"name": "ig", "options": {}}, "batch_size": 1}
    frame = pd.DataFrame({"cell_id": [f"c{i}" for i in range(len(psnrs))], "status": "done",
                          "config": json.dumps(config), "psnr": psnrs})
    columns = measured_columns(frame, definition)
    rows = compare(definition, read_published(definition), aggregate(measured_long(frame, definition, columns),
                                                                     definition), columns)
    return RegeneratedTable(definition, tmp_path, "g", True, len(psnrs), 0, columns, rows, ())


def test_a_row_measured_on_a_stand_in_says_so_in_every_format(tmp_path):
    from evalgrid.tables.render import FORMATS

    table = stand_in_table(tmp_path, "digits", [10.0, 14.0])
    (row,) = table.rows  # matched to the paper's row by its label: mean 12 beside the published 20
    assert row.keys == ("cifar10", "GIA-O", "16") and row.mean == 12.0 and row.published == 20.0
    markdown = FORMATS["markdown"](table)
    assert "| dataset | attack | batch 16 (measured: 1) |" in markdown
    assert "| cifar10 (measured: digits) | GIA-O | 12.00 ± 2.8 [20.00, Δ −8.000] |" in markdown
    assert "(measured: ig)" not in markdown  # a rename (map) is no stand-in
    assert r"cifar10 (measured: digits) & GIA-O & 12.00 $\pm$ 2.8" in FORMATS["latex"](table)
    csv = pd.read_csv(io.StringIO(FORMATS["csv"](table)))
    assert csv[["dataset", "measured_dataset", "attack", "batch", "measured_batch", "published", "difference"]
               ].values.tolist() == [["cifar10", "digits", "GIA-O", 16, 1, 20.0, -8.0]]
    assert "measured_attack" not in csv.columns


def test_a_row_measured_on_the_papers_own_setting_reads_plainly(tmp_path):
    from evalgrid.tables.render import FORMATS

    markdown = FORMATS["markdown"](stand_in_table(tmp_path, "cifar10", [18.0]))
    assert "| cifar10 | GIA-O | 18.00 [20.00, Δ −2.000] |" in markdown and "(measured: digits)" not in markdown


def test_a_table_says_how_many_of_its_cells_ran_under_budget(tmp_path):
    import dataclasses

    from evalgrid.tables import _under_budget
    from evalgrid.tables.render import FORMATS

    frame = pd.DataFrame({"status": ["done", "done", "done", "failed"], "budget_share": [0.0125, 0.5, 0.3, 0.01]})
    assert _under_budget(frame) == 2  # 0.5 is the preset's half: not under; a failed cell is no result
    assert _under_budget(frame.drop(columns="budget_share")) == 0  # results from before the column
    table = stand_in_table(tmp_path, "digits", [10.0, 14.0])
    assert "ran under budget" not in FORMATS["markdown"](table)
    marked = FORMATS["markdown"](dataclasses.replace(table, under_budget=2))
    assert "2 cells ran under budget (fewer than half the preset's iterations" in marked
