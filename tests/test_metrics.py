"""Metrics: agreement with scikit-image, matching, scoring and label accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from evalgrid.errors import UserError
from evalgrid.metrics import required_weights
from evalgrid.metrics.scoring import MetricValue, match_reconstructions, score
from evalgrid.catalogue import METRICS
from evalgrid.metrics.image import psnr, ssim
from evalgrid.metrics.labels import label_accuracy
from evalgrid.metrics.options import MetricOptions, relevant
from evalgrid.catalogue.options import InvalidOption, parse_options
from evalgrid.fl.threat_model import ClientData

SHAPES = [(4, 1, 32, 32), (4, 3, 32, 32), (3, 3, 24, 40), (2, 1, 11, 11)]
TOLERANCE = 1e-4


def random_images(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def noisy_copy(images, level=0.1, seed=1):
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return (images + level * noise).clamp(0, 1)


def pairs(shape):
    """Two kinds of pairs: unrelated images, and images with a noisy copy of themselves."""
    originals = random_images(shape)
    return {"unrelated": (originals, random_images(shape, seed=2)), "noisy": (originals, noisy_copy(originals))}


def skimage_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return peak_signal_noise_ratio(a.double().numpy(), b.double().numpy(), data_range=1)


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return structural_similarity(a.double().numpy(), b.double().numpy(), data_range=1, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False, channel_axis=0)


def client(images, labels=None):
    labels = torch.arange(len(images)) if labels is None else labels
    return ClientData(images=images, labels=labels)


# --- PSNR and SSIM -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["unrelated", "noisy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_psnr_matches_scikit_image(shape, kind):
    originals, reconstructions = pairs(shape)[kind]
    ours = psnr(originals, reconstructions)
    reference = [skimage_psnr(a, b) for a, b in zip(originals, reconstructions)]
    np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("kind", ["unrelated", "noisy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_ssim_matches_scikit_image(shape, kind):
    originals, reconstructions = pairs(shape)[kind]
    ours = ssim(originals, reconstructions)
    reference = [skimage_ssim(a, b) for a, b in zip(originals, reconstructions)]
    np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=TOLERANCE)


def test_psnr_of_an_exact_copy_is_the_100_db_floor():
    images = random_images((2, 3, 32, 32))
    assert psnr(images, images.clone()).tolist() == [100.0, 100.0]


def test_ssim_of_an_exact_copy_is_one():
    images = random_images((2, 3, 32, 32))
    assert ssim(images, images.clone()).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


def test_ssim_refuses_images_smaller_than_its_window():
    images = random_images((1, 1, 10, 32))
    with pytest.raises(ValueError, match=r"at least 11×11 pixels.*got 10×32"):
        ssim(images, images)


# --- matching ----------------------------------------------------------------------------

def test_matching_recovers_a_known_shuffle():
    originals = random_images((8, 3, 16, 16))
    shuffle = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    reconstructions = noisy_copy(originals)[shuffle]
    permutation = match_reconstructions(originals, reconstructions)
    assert torch.equal(reconstructions[permutation], noisy_copy(originals))
    assert torch.equal(shuffle[permutation], torch.arange(8))


def test_matching_minimises_the_total_error_not_each_greedy_choice():
    # Greedy pairing would give original 0.4 its nearest reconstruction, 0.5, and leave 0.6
    # with 0.0 (total squared error 0.37); the assignment pairs 0.4-0.0 and 0.6-0.5 (0.17).
    originals = torch.tensor([0.4, 0.6]).view(2, 1, 1, 1)
    reconstructions = torch.tensor([0.0, 0.5]).view(2, 1, 1, 1)
    assert match_reconstructions(originals, reconstructions).tolist() == [0, 1]


def test_matching_survives_a_diverged_reconstruction():
    originals = random_images((3, 1, 8, 8))
    reconstructions = originals.clone()
    reconstructions[1] = float("nan")
    assert match_reconstructions(originals, reconstructions).tolist() == [0, 1, 2]


def constant_images(*values):
    """(len(values), 1, 2, 2) images of one grey level each (dyadic levels: exact in float32)."""
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def test_nearest_matching_lets_originals_share_their_closest_reconstruction():
    # MSEs: original 0.25 to reconstructions (0.375, 1.0): 1/64, 9/16; original 0.5: 1/64, 1/4.
    originals, reconstructions = constant_images(0.25, 0.5), constant_images(0.375, 1.0)
    assert match_reconstructions(originals, reconstructions, "nearest").tolist() == [0, 0]
    assert match_reconstructions(originals, reconstructions, "one_to_one").tolist() == [0, 1]


def test_nearest_matching_breaks_ties_to_the_lowest_index():
    originals, reconstructions = constant_images(0.5, 0.5), constant_images(0.75, 0.25)
    assert match_reconstructions(originals, reconstructions, "nearest").tolist() == [0, 0]


def test_nearest_matching_of_well_separated_reconstructions_is_the_one_to_one_matching():
    originals = random_images((8, 3, 16, 16))
    shuffle = torch.randperm(8, generator=torch.Generator().manual_seed(5))
    reconstructions = noisy_copy(originals, level=0.05)[shuffle]
    nearest = match_reconstructions(originals, reconstructions, "nearest")
    assert torch.equal(nearest, match_reconstructions(originals, reconstructions, "one_to_one"))
    assert torch.equal(shuffle[nearest], torch.arange(8))


def test_matching_refuses_an_unknown_rule():
    images = random_images((2, 1, 4, 4))
    with pytest.raises(ValueError, match="unknown matching rule 'closest'.*one_to_one, nearest"):
        match_reconstructions(images, images, "closest")


# --- score -------------------------------------------------------------------------------

def test_scores_do_not_depend_on_the_order_of_the_reconstructions():
    originals = random_images((6, 3, 32, 32))
    reconstructions = noisy_copy(originals, level=0.2)
    in_order = score(client(originals), reconstructions, torch.arange(6), False, ["psnr", "ssim"])
    shuffle = torch.randperm(6, generator=torch.Generator().manual_seed(4))
    shuffled = score(client(originals), reconstructions[shuffle], torch.arange(6), False, ["psnr", "ssim"])
    assert shuffled.values == in_order.values
    assert torch.equal(shuffle[shuffled.matching], torch.arange(6))


def test_nearest_scores_each_original_against_its_closest_reconstruction():
    # FedLeak's rule: both originals take reconstruction 0 (MSE 1/64 each), where the SoK's
    # assignment gives original 1 reconstruction 1 (MSE 1/4). PSNR = 10·log10(1 / MSE).
    originals, reconstructions = constant_images(0.25, 0.5), constant_images(0.375, 1.0)
    nearest = score(client(originals), reconstructions, torch.arange(2), False, ["psnr"], "nearest")
    one_to_one = score(client(originals), reconstructions, torch.arange(2), False, ["psnr"], "one_to_one")
    assert nearest.values["psnr"].per_sample == pytest.approx([10 * math.log10(64), 10 * math.log10(64)])
    assert one_to_one.values["psnr"].per_sample == pytest.approx([10 * math.log10(64), 10 * math.log10(4)])
    assert nearest.matching.tolist() == [0, 0]
    # what trial_artifacts saves: the reconstruction paired with each original, repeats included
    assert torch.equal(reconstructions[nearest.matching], constant_images(0.375, 0.375))


def test_nearest_scores_equal_one_to_one_scores_for_well_separated_reconstructions():
    originals = random_images((6, 3, 32, 32))
    reconstructions = noisy_copy(originals, level=0.1)[torch.tensor([3, 0, 5, 1, 4, 2])]
    metrics = ["psnr", "ssim", "label_acc"]
    nearest = score(client(originals), reconstructions, torch.arange(6), False, metrics, "nearest")
    one_to_one = score(client(originals), reconstructions, torch.arange(6), False, metrics)
    assert nearest.values == one_to_one.values
    assert torch.equal(nearest.matching, one_to_one.matching)


def test_per_sample_values_follow_the_originals_order():
    originals = random_images((4, 1, 16, 16))
    reconstructions = originals.clone()
    reconstructions[2] = noisy_copy(originals[2:3])[0]  # only original 2 is imperfect
    flipped = score(client(originals), reconstructions.flip(0), torch.arange(4), False, ["psnr"])
    per_sample = flipped.values["psnr"].per_sample
    assert [value == 100.0 for value in per_sample] == [True, True, False, True]
    assert flipped.values["psnr"].mean == pytest.approx(sum(per_sample) / 4)


def test_score_clamps_reconstructions_to_pixel_range():
    originals = random_images((2, 1, 16, 16))
    overshoot = originals.clone()
    overshoot[originals > 0.5] = 3.0
    overshoot[originals <= 0.5] = -2.0
    scores = score(client(originals), overshoot, torch.arange(2), False, ["psnr"])
    expected = psnr(originals, overshoot.clamp(0, 1))
    assert scores.values["psnr"].per_sample == tuple(expected.double().tolist())


def test_score_returns_the_metrics_asked_for_in_order():
    originals = random_images((2, 1, 16, 16))
    scores = score(client(originals), originals, torch.arange(2), False, ["ssim", "label_acc", "psnr"])
    assert list(scores.values) == ["ssim", "label_acc", "psnr"]
    assert all(isinstance(value, MetricValue) for value in scores.values.values())


def test_score_refuses_an_unknown_metric_with_a_suggestion():
    originals = random_images((2, 1, 16, 16))
    with pytest.raises(UserError, match="Did you mean 'psnr'"):
        score(client(originals), originals, torch.arange(2), False, ["pnsr"])


def test_label_accuracy_through_score_has_no_per_sample_values():
    originals = random_images((4, 1, 16, 16))
    scores = score(client(originals, torch.tensor([1, 2, 3, 4])), originals, torch.tensor([4, 3, 2, 9]),
                   False, ["label_acc"])
    assert scores.values["label_acc"] == MetricValue(mean=0.75, per_sample=())


def test_required_weights_lists_each_file_once():
    assert required_weights(["psnr", "lpips", "ssim", "lpips"]) == ["alexnet"]
    assert required_weights(["psnr", "ssim", "label_acc"]) == []


def test_registry_holds_the_reconstruction_leakage_and_model_metrics():
    assert METRICS.names() == ["psnr", "ssim", "lpips", "label_acc", "brr", "wsrr", "igsa", "accuracy",
                               "defended_accuracy"]
    assert [name for name in METRICS if METRICS[name].per_sample] == ["psnr", "ssim", "lpips"]
    assert [name for name in METRICS if METRICS[name].metric_kind == "leakage"] == ["brr", "wsrr"]


# --- label accuracy ----------------------------------------------------------------------

def test_permuted_labels_are_all_correct():
    assert label_accuracy(torch.tensor([0, 1, 2, 3]), torch.tensor([3, 1, 0, 2]), labels_known=False) == 1.0


def test_one_wrong_label_of_four_scores_three_quarters():
    assert label_accuracy(torch.tensor([0, 1, 2, 3]), torch.tensor([3, 1, 0, 7]), labels_known=False) == 0.75


@pytest.mark.parametrize("true, recovered, expected", [
    ([3, 3, 5], [3, 5, 5], 2 / 3),  # a label recovered twice counts once per true occurrence
    ([3, 5, 7], [3, 3, 3], 1 / 3),
    ([3, 3, 5], [5, 3, 3], 1.0),
])
def test_repeated_labels_count_as_a_multiset(true, recovered, expected):
    assert label_accuracy(torch.tensor(true), torch.tensor(recovered), labels_known=False) == pytest.approx(expected)


def test_label_accuracy_is_not_applicable_when_labels_were_known():
    assert math.isnan(label_accuracy(torch.tensor([0, 1]), torch.tensor([0, 1]), labels_known=True))


# --- [metric_options] matching -------------------------------------------------------------

def test_matching_defaults_to_the_sok_one_to_one_assignment():
    assert MetricOptions().matching == "one_to_one"
    assert parse_options(MetricOptions, {"matching": "nearest"}).matching == "nearest"


def test_an_unknown_matching_rule_is_refused_with_the_choices():
    with pytest.raises(InvalidOption, match="'closest' is not allowed.*nearest"):
        parse_options(MetricOptions, {"matching": "closest"})


def test_default_matching_stays_out_of_cell_ids():
    # added after grids had run: at its default, existing grids keep their cell ids
    assert "matching" not in relevant(MetricOptions(), ("psnr", "ssim", "lpips", "brr", "wsrr"))


def test_nearest_matching_enters_the_ids_of_grids_measuring_reconstructions_only():
    nearest = MetricOptions(matching="nearest")
    for metric in ["psnr", "ssim", "lpips", "brr", "wsrr"]:
        assert relevant(nearest, (metric,))["matching"] == "nearest"
    assert "matching" not in relevant(nearest, ("label_acc", "igsa", "accuracy"))


def test_grid_matching_option_is_validated(write_grid, cli, tmp_path):
    from conftest import MINIMAL_GRID
    from evalgrid.grid import load_grid

    grid = load_grid(write_grid(MINIMAL_GRID + '\n[metric_options]\nmatching = "nearest"\n'))
    assert {cell.metric_options.matching for cell in grid.cells} == {"nearest"}
    out = tmp_path / "out"
    result = cli("run", write_grid(MINIMAL_GRID + '\n[metric_options]\nmatching = "closest"\n'), "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output and not out.exists()
    assert "metric_options.matching" in result.output and "'closest' is not allowed" in result.output
    assert "one_to_one" in result.output and "nearest" in result.output


def test_fedleak_grids_and_their_smoke_companions_match_nearest():
    from pathlib import Path

    from evalgrid.grid import load_grid

    root = Path(__file__).parent.parent / "grids" / "fedleak"
    paths = sorted(root.glob("*.toml")) + sorted(root.glob("smoke/*.toml"))
    assert len(paths) > 10
    for path in paths:
        assert {cell.metric_options.matching for cell in load_grid(path).cells} == {"nearest"}, path
