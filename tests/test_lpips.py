"""LPIPS through the lpips package, and the weights files it needs, without any download.

The tests put a randomly initialised AlexNet under the real file name into a temporary
torch cache: LPIPS with it is not the published metric, but it is the same computation.
"""

from __future__ import annotations

import socket
import warnings

import lpips as lpips_package
import pytest
import torch
import torchvision

from evalgrid.errors import UserError
from evalgrid.metrics.scoring import score
from evalgrid.metrics.perceptual import clear_lpips_cache, lpips, lpips_network
from evalgrid.fl.threat_model import ClientData
from evalgrid.models.weights import fetch_weights, missing_weights, require_weights, weights_path

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


@pytest.fixture
def torch_home(torch_home):
    """conftest's empty torch cache, with the LPIPS networks loaded from another cache forgotten."""
    clear_lpips_cache()
    yield torch_home
    clear_lpips_cache()


@pytest.fixture
def alexnet_weights(torch_home):
    """A randomly initialised AlexNet saved where torchvision looks for the ImageNet weights."""
    path = torch_home / "hub" / "checkpoints" / ALEXNET_FILE
    path.parent.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to reach the network is recorded and fails."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def random_images(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def reference_lpips(originals, reconstructions):
    """The lpips package called directly, as its README shows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = lpips_package.LPIPS(net="alex", verbose=False)
    with torch.no_grad():
        return network(originals * 2 - 1, reconstructions * 2 - 1).flatten()


# --- LPIPS -------------------------------------------------------------------------------

@pytest.mark.usefixtures("alexnet_weights")
def test_lpips_equals_the_lpips_package():
    originals, reconstructions = random_images((3, 3, 32, 32)), random_images((3, 3, 32, 32), seed=1)
    torch.testing.assert_close(lpips(originals, reconstructions), reference_lpips(originals, reconstructions),
                               rtol=0, atol=1e-6)


@pytest.mark.usefixtures("alexnet_weights")
def test_lpips_repeats_grayscale_to_three_channels():
    originals, reconstructions = random_images((2, 1, 32, 32)), random_images((2, 1, 32, 32), seed=1)
    expected = reference_lpips(originals.repeat(1, 3, 1, 1), reconstructions.repeat(1, 3, 1, 1))
    torch.testing.assert_close(lpips(originals, reconstructions), expected, rtol=0, atol=1e-6)


@pytest.mark.usefixtures("alexnet_weights")
def test_lpips_network_is_built_once_per_device():
    assert lpips_network("cpu") is lpips_network(torch.device("cpu"))


@pytest.mark.usefixtures("alexnet_weights")
def test_building_lpips_prints_and_warns_nothing(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lpips(random_images((1, 3, 32, 32)), random_images((1, 3, 32, 32), seed=1))
    assert capsys.readouterr().out == ""
    assert [str(warning.message) for warning in caught] == []


@pytest.mark.usefixtures("alexnet_weights")
def test_score_pairs_lpips_with_the_matched_reconstructions():
    originals = random_images((3, 3, 32, 32))
    scores = score(ClientData(originals, torch.arange(3)), originals.flip(0), torch.arange(3), False, ["lpips"])
    assert scores.values["lpips"].per_sample == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)


@pytest.mark.usefixtures("alexnet_weights")
def test_lpips_refuses_images_too_small_for_alexnet():
    images = random_images((1, 1, 28, 28))
    with pytest.raises(ValueError, match="at least 31×31"):
        lpips(images, images)


def test_missing_alexnet_weights_name_the_path_and_the_fetch_command(torch_home):
    images = random_images((1, 3, 32, 32))
    with pytest.raises(UserError) as raised:
        lpips(images, images)
    message = str(raised.value)
    assert str(torch_home / "hub" / "checkpoints" / ALEXNET_FILE) in message
    assert str(torch_home / "hub") in message  # torch's cache folder
    assert "`evalgrid weights fetch alexnet`" in message


def test_missing_weights_fail_before_any_download_is_attempted(torch_home, no_network):
    images = random_images((2, 3, 32, 32))
    with pytest.raises(UserError):
        score(ClientData(images, torch.arange(2)), images, torch.arange(2), False, ["psnr", "lpips"])
    assert no_network == []
    assert not (torch_home / "hub" / "checkpoints").exists()


# --- the weights registry ----------------------------------------------------------------

def test_weights_path_follows_the_torch_cache_at_call_time(torch_home, tmp_path):
    assert weights_path("alexnet") == torch_home / "hub" / "checkpoints" / ALEXNET_FILE
    torch.hub.set_dir(str(tmp_path / "elsewhere"))
    assert weights_path("alexnet") == tmp_path / "elsewhere" / "checkpoints" / ALEXNET_FILE


def test_missing_weights_lists_only_absent_files(torch_home):
    assert missing_weights(["alexnet", "alexnet"]) == ["alexnet"]
    path = weights_path("alexnet")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert missing_weights(["alexnet"]) == []
    require_weights(["alexnet"])  # does not raise


def test_unknown_weights_name_suggests_the_known_one(torch_home):
    with pytest.raises(UserError, match="Did you mean 'alexnet'"):
        require_weights(["alexnett"])


def test_fetching_weights_already_present_does_not_touch_the_network(alexnet_weights, no_network):
    before = alexnet_weights.read_bytes()
    assert fetch_weights("alexnet", progress=False) == alexnet_weights
    assert alexnet_weights.read_bytes() == before
    assert no_network == []


def test_alexnet_url_is_torchvisions():
    assert weights_path("alexnet").name == torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
