"""The adversary's priors: trained once per setup on data disjoint from every victim, cached
beside the stage models and resumable; loaded from the user's file with ``weights_only``;
named in the cell id; checked before anything runs; and, on Slurm, trained by a job the cells
wait for."""

from __future__ import annotations

import pytest
import torch

import evalgrid
from evalgrid.catalogue import PRIORS
from evalgrid.catalogue.options import parse_options
from evalgrid.evaluation.building import describe_dataset, load_dataset
from evalgrid.grid import load_grid
from evalgrid.grid.cell import Choice
from evalgrid.priors import dcgan
from evalgrid.priors.cache import auxiliary_images, prior_network, prior_trainings
from evalgrid.priors.request import PriorRequest

DIGITS = "{ name = \"digits\", resolution = 16 }"
TINY_PRIOR = "{ name = \"dcgan\", epochs = 2, width = 4, latent = 8 }"
TINY_GIAL = "{ name = \"gia_l\", latent_iterations = 2, generator_iterations = 2, restarts = 1 }"

GRID = f"""
name = "priors"
metrics = ["psnr"]

[factors]
dataset = [{DIGITS}]
model = [{{ name = "convnet", width = 4 }}]
attack = [{TINY_GIAL}, {{ name = "ig", iterations = 2 }}]
prior = [{TINY_PRIOR}, "none"]
batch_size = [2]
labels = ["known"]

[[exclude]]
attack = "gia_l"
prior = "none"

[[exclude]]
attack = "ig"
prior = "dcgan"
"""


def digits(split: str = "train") -> Choice:
    from evalgrid.data.options import DigitsOptions

    return Choice("digits", DigitsOptions(resolution=16, split=split))


def request(victims: Choice | None = None, **options) -> PriorRequest:
    prior = Choice("dcgan", parse_options(PRIORS["dcgan"].options, {"epochs": 2, "width": 4, "latent": 8, **options}))
    return PriorRequest(prior, victims or digits(), 0)


@pytest.mark.parametrize("victims_split", ["train", "test"])
def test_no_victim_image_is_in_the_priors_training_data(victims_split):
    wanted = request(digits(victims_split))
    info = describe_dataset(wanted.victims, 0, None)
    auxiliary = auxiliary_images(wanted, info, None)
    victims = load_dataset(wanted.victims, 0, None)
    every_victim, _ = victims.batch(list(range(len(victims))))
    seen = {image.numpy().tobytes() for image in every_victim}
    assert wanted.auxiliary.options.split != victims_split
    assert len(auxiliary) > 0 and not any(image.numpy().tobytes() in seen for image in auxiliary)


def test_another_dataset_is_converted_to_the_victims_channels_and_side():
    from evalgrid.data.options import PhotoOptions

    photos = Choice("photos", PhotoOptions(resolution=16))
    wanted = request(photos, data="digits", samples=5)
    images = auxiliary_images(wanted, describe_dataset(photos, 0, None), None)
    assert images.shape == (5, 3, 16, 16)
    assert torch.equal(images[:, 0], images[:, 2])  # grey digits replicated into the three channels


def test_a_prior_is_trained_once_then_read_from_the_cache(tmp_path):
    first, record = prior_network(request(), None, tmp_path, "cpu")
    again, cached = prior_network(request(), None, tmp_path, "cpu")
    assert record.trained_now and not cached.trained_now and record.key == cached.key
    assert len(prior_trainings(tmp_path)) == 1
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not first.training


def test_a_prior_not_in_the_cache_is_not_trained_by_a_job_that_must_not_train(tmp_path):
    from evalgrid.priors.cache import PriorNotTrained

    with pytest.raises(PriorNotTrained, match="not in"):
        prior_network(request(), None, tmp_path, "cpu", train=False)


def test_a_stopped_training_resumes_and_ends_in_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    options = request(epochs=3).prior.options
    images = torch.rand(10, 1, 16, 16)
    whole = dcgan.Generator(8, 4, 1, 16)
    dcgan.train(options, whole, images, None, lambda state: None, torch.device("cpu"))

    class Stopped(Exception):
        pass

    def save_then_stop(state):
        torch.save(state, tmp_path / "progress.pt")
        raise Stopped

    monkeypatch.setattr(dcgan, "SAVE_EVERY_S", 0.0)
    with pytest.raises(Stopped):
        dcgan.train(options, dcgan.Generator(8, 4, 1, 16), images, None, save_then_stop, torch.device("cpu"))
    saved = torch.load(tmp_path / "progress.pt", weights_only=True)
    assert saved["epoch"] == 1
    resumed = dcgan.Generator(8, 4, 1, 16)
    dcgan.train(options, resumed, images, saved, lambda state: None, torch.device("cpu"))
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_priors_setup_enters_the_cell_id_and_the_cells_without_one_keep_theirs(write_grid):
    grid = load_grid(write_grid(GRID))
    more = load_grid(write_grid(GRID.replace("epochs = 2", "epochs = 3"), "more.toml"))
    ids = {cell.attack.name: cell.cell_id for cell in grid.cells}
    other = {cell.attack.name: cell.cell_id for cell in more.cells}
    assert ids["ig"] == other["ig"] and ids["gia_l"] != other["gia_l"]
    # independently: the id of the ig cell is the hash of a canonical JSON that has no "prior" key
    ig = next(cell for cell in grid.cells if cell.attack.name == "ig")
    assert '"prior"' not in ig.canonical_json() and '"prior"' in next(
        c for c in grid.cells if c.attack.name == "gia_l").canonical_json()


@pytest.mark.parametrize(("change", "message"), [
    (('prior = [' + TINY_PRIOR + ', "none"]', 'prior = ["none"]'), "optimises through a generator prior"),
    (('[[exclude]]\nattack = "ig"\nprior = "dcgan"', ''), "takes no prior"),
    (('epochs = 2,', 'epochs = 2, data = "digits",'), "could train on the victims' own images"),
])
def test_a_prior_that_does_not_fit_its_cell_is_refused_when_the_grid_is_read(write_grid, cli, change, message):
    text = GRID.replace(*change)
    if change[1] == 'prior = ["none"]':
        text = text.replace('[[exclude]]\nattack = "gia_l"\nprior = "none"', '')
    result = cli("plan", write_grid(text))
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_plan_lists_the_priors_to_train_then_cached(write_grid, cli, tmp_path):
    grid = write_grid(GRID)
    before = cli("plan", grid, "--out", tmp_path / "out")
    assert "to train  prior dcgan" in before.output and "1 prior trainings, 0 cached" in before.output
    assert cli("run", grid, "--out", tmp_path / "out").exit_code == 0
    after = cli("plan", grid, "--out", tmp_path / "out")
    assert "cached   prior dcgan" in after.output and "1 prior trainings, 1 cached" in after.output
    frame = evalgrid.load(tmp_path / "out")
    gial, ig = (frame[frame["attack"].astype(str).str.startswith(name)].iloc[0] for name in ("gia_l", "ig"))
    assert gial["prior_key"].startswith("priors/") and ig["prior_key"] == "" and ig["prior"] == "none"
    assert gial["status"] == "done" and gial["prior"] == "dcgan(epochs=2, latent=8, width=4)"
    assert len(prior_trainings(tmp_path / "out" / "stages")) == 1


def checkpoint_grid(write_grid, path: str, width: int = 4) -> str:
    prior = f'{{ name = "dcgan_checkpoint", path = "{path}", width = {width}, latent = 8 }}'
    return write_grid(GRID.replace(f'prior = [{TINY_PRIOR}, "none"]', f'prior = [{prior}, "none"]')
                      .replace('prior = "dcgan"', 'prior = "dcgan_checkpoint"'))


def test_a_checkpoint_prior_loads_the_users_generator_strictly(write_grid, cli, tmp_path):
    torch.manual_seed(0)
    saved = dcgan.Generator(8, 4, 1, 16, pointwise_head=True)
    torch.save(saved.state_dict(), tmp_path / "netG.pt")
    grid = checkpoint_grid(write_grid, "netG.pt")  # relative to the grid file
    assert cli("plan", grid, "--check").exit_code == 0
    request_ = next(cell for cell in load_grid(grid).cells if cell.prior is not None)
    from evalgrid.priors.request import prior_request

    loaded, record = prior_network(prior_request(request_), None, tmp_path / "cache", "cpu")
    assert record.key == "" and all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(),
                                                                        loaded.state_dict().values()))


@pytest.mark.parametrize("problem", ["missing", "other width", "not weights"])
def test_a_checkpoint_prior_that_cannot_be_used_stops_before_dispatch_naming_the_file(write_grid, cli, tmp_path,
                                                                                        problem):
    path = tmp_path / "netG.pt"
    if problem == "other width":
        torch.save(dcgan.Generator(8, 8, 1, 16, pointwise_head=True).state_dict(), path)
    elif problem == "not weights":  # a crafted file that runs a command when unpickled by a trusting loader
        torch.save({"main.0.weight": Crafted(tmp_path / "ran")}, path)
    result = cli("run", checkpoint_grid(write_grid, "netG.pt"), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "netG.pt" in result.output and "factors.prior" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out" / "cells").exists()
    assert not (tmp_path / "ran").exists()


class Crafted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_rows_written_before_the_prior_factor_existed_load_with_no_prior(tmp_path, write_grid):
    import pyarrow.parquet as pq

    from evalgrid.store.layout import OutputDir
    from evalgrid.store.results import empty_row, read_rows, write_result

    out = OutputDir(tmp_path / "out")
    cells = load_grid(write_grid(GRID)).cells
    for cell in cells:
        row = empty_row()
        row.update(cell_id=cell.cell_id, grid="g", config=cell.canonical_json(), status="done", **cell.factor_labels())
        write_result(out, row)
    ig = next(cell for cell in cells if cell.prior is None)
    older = out.done_result(ig.cell_id)  # as an older evalgrid wrote it: no prior column
    pq.write_table(read_rows([older]).drop_columns(["prior"]), older)
    frame = evalgrid.load(out.root)
    assert sorted(frame["prior"].astype(str)) == ["dcgan(epochs=2, latent=8, width=4)", "none"]


def test_a_killed_trainings_progress_in_the_cache_is_resumed_from(tmp_path, monkeypatch):
    import json

    from evalgrid.priors.request import META_FILE, PROGRESS_FILE

    wanted = request(epochs=3)
    uninterrupted, _ = prior_network(wanted, None, tmp_path / "whole", "cpu")

    class Killed(Exception):
        pass

    def killed_after_one_epoch(state):
        torch.save(state, wanted.folder(tmp_path / "cache") / PROGRESS_FILE)
        raise Killed

    original = dcgan.train
    monkeypatch.setattr(dcgan, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(dcgan, "train", lambda *args: original(*args[:4], killed_after_one_epoch, args[5]))
    with pytest.raises(Killed):
        prior_network(wanted, None, tmp_path / "cache", "cpu")
    monkeypatch.setattr(dcgan, "train", original)
    resumed, record = prior_network(wanted, None, tmp_path / "cache", "cpu")
    folder = wanted.folder(tmp_path / "cache")
    assert record.trained_now and json.loads((folder / META_FILE).read_text())["resumed"]
    assert not (folder / PROGRESS_FILE).exists()
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted.state_dict().values(), resumed.state_dict().values()))
