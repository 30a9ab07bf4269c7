"""Adaptive DP (Adap DP-FL, Fu et al. 2022): DP-SGD whose noise multiplier decays across rounds,
σ_t = σ_0·β^d, with the round's clip bound; on tiny models, and once through a real cell."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from evalgrid.catalogue import DEFENSES
from evalgrid.catalogue.options import InvalidOption, parse_options
from evalgrid.defenses.accountant import DEFAULT_ORDERS
from evalgrid.defenses.adaptive_dp import AdaptiveDP
from evalgrid.defenses.base import ClientSide
from evalgrid.defenses.chain import DefenseChain
from evalgrid.defenses.dpsgd import DPSGD
from evalgrid.defenses.options import AdaptiveDPOptions, DPSGDOptions
from evalgrid.fl.local_training import local_update
from evalgrid.fl.objective import loss_gradients
from evalgrid.fl.threat_model import ClientData, LocalTraining, Normalization, SharedUpdate

BATCH = 4
NORMALIZATION = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def client(model: nn.Module, classes: int = 3) -> ClientSide:
    images = torch.rand((BATCH, 3, 4, 4), generator=torch.Generator().manual_seed(1))
    labels = torch.arange(BATCH) % classes
    training = LocalTraining("fedsgd", 1, BATCH, 1.0, "train", False)
    return ClientSide(model, ClientData(images, labels), NORMALIZATION, training, torch.Generator().manual_seed(0))


def private_update(defense: AdaptiveDP, side: ClientSide, seed: int) -> torch.Tensor:
    """The client's FedSGD gradient with the defense's DP-SGD step, flattened."""
    privacy = defense.private_gradients(torch.Generator().manual_seed(seed))
    inputs = side.normalization.normalize(side.data.images)
    shared = local_update(side.model, inputs, side.data.labels, side.training, privacy=privacy)
    return torch.cat([g.reshape(-1) for g in shared])


def gaussian_mechanism_epsilon(sigma: float, delta: float) -> float:
    """ε of one unsampled Gaussian mechanism (q = 1): RDP α/(2σ²), converted by Balle et al.
    2020 Thm. 21, minimised over the accountant's orders; written out here."""
    alphas = np.array(DEFAULT_ORDERS)
    rdp = alphas / (2 * sigma ** 2)
    return float((rdp + np.log((alphas - 1) / alphas) - (math.log(delta) + np.log(alphas)) / (alphas - 1)).min())


# --- the schedule ------------------------------------------------------------------------

def test_noise_multiplier_after_d_decays_is_sigma0_times_beta_to_the_d():
    # σ_t = σ_0·β^d with σ_0 = 2, β = 0.5: 2, 1, 0.5, 0.25, 0.125.
    got = [AdaptiveDP(AdaptiveDPOptions(noise_multiplier=2.0, decay_rate=0.5, decayed_rounds=d)).noise_multiplier
           for d in range(5)]
    assert got == pytest.approx([2.0, 1.0, 0.5, 0.25, 0.125])


def test_noise_never_grows_over_the_rounds_and_stays_constant_without_decay():
    decaying = [AdaptiveDP(AdaptiveDPOptions(decay_rate=0.9, decayed_rounds=d)).noise_multiplier for d in range(50)]
    assert all(later < earlier for earlier, later in zip(decaying, decaying[1:]))
    constant = {AdaptiveDP(AdaptiveDPOptions(decay_rate=1.0, decayed_rounds=d)).noise_multiplier for d in range(50)}
    assert constant == {1.0}


def test_local_training_noise_std_is_the_decayed_sigma_times_the_clip_bound_over_the_batch():
    # Two runs with different noise draws differ by (n1 − n2)/b, n ~ N(0, (σ_t·C)² I): the
    # difference has std √2·σ_t·C/b. σ_t = 2·0.5² = 0.5 (undecayed it would be four times larger).
    torch.manual_seed(0)
    side = client(nn.Sequential(nn.Flatten(), nn.Linear(48, 400)), classes=400)
    clip = 0.3
    defense = AdaptiveDP(AdaptiveDPOptions(noise_multiplier=2.0, decay_rate=0.5, decayed_rounds=2, clip_norm=clip))
    difference = (private_update(defense, side, 1) - private_update(defense, side, 2)).double()
    expected = math.sqrt(2) * 0.5 * clip / BATCH
    assert difference.std().item() == pytest.approx(expected, rel=5 / math.sqrt(2 * difference.numel()))


def test_every_per_sample_gradient_is_clipped_to_the_rounds_bound():
    # Without noise and a bound below every sample's gradient norm, the step is C times the mean
    # of the per-sample unit gradients, computed here sample by sample.
    torch.manual_seed(0)
    side = client(nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.Sigmoid(), nn.Linear(8, 3)))
    clip = 1e-4
    defense = AdaptiveDP(AdaptiveDPOptions(noise_multiplier=0.0, clip_norm=clip, decayed_rounds=3))
    inputs = side.normalization.normalize(side.data.images)
    units = []
    for index in range(BATCH):
        g = torch.cat([t.reshape(-1) for t in loss_gradients(side.model, inputs[index:index + 1],
                                                               side.data.labels[index:index + 1])]).double()
        assert torch.linalg.vector_norm(g) > clip
        units.append(g / torch.linalg.vector_norm(g))
    expected = clip * torch.stack(units).mean(0)
    assert torch.allclose(private_update(defense, side, 0).double(), expected, atol=1e-9)


def test_the_shared_update_is_left_as_the_local_training_made_it():
    update = SharedUpdate((torch.ones(3), torch.zeros(2)), BATCH)
    out = AdaptiveDP(AdaptiveDPOptions()).apply(update, client(nn.Linear(2, 2)))
    assert out is not update and all(a is b for a, b in zip(out.gradients, update.gradients))


# --- the privacy guarantee ---------------------------------------------------------------

def test_epsilon_is_the_gaussian_mechanisms_at_the_decayed_sigma():
    # FedSGD on the whole batch: q = 1, one step. σ_t = 4·0.5² = 1.
    defense = AdaptiveDP(AdaptiveDPOptions(noise_multiplier=4.0, decay_rate=0.5, decayed_rounds=2, delta=1e-5))
    training = LocalTraining("fedsgd", 1, BATCH, 1.0, "eval", False)
    assert defense.epsilon(training, BATCH) == pytest.approx(gaussian_mechanism_epsilon(1.0, 1e-5), rel=1e-9)


def test_the_guarantee_weakens_as_the_noise_decays():
    training = LocalTraining("fedavg", 10, 4, 0.1, "eval", False)
    epsilons = [AdaptiveDP(AdaptiveDPOptions(decay_rate=0.95, decayed_rounds=d)).epsilon(training, 16)
                for d in (0, 10, 50)]
    assert epsilons[0] < epsilons[1] < epsilons[2]


# --- options -------------------------------------------------------------------------------

def test_default_options_are_the_documented_preset():
    options = AdaptiveDPOptions()
    assert (options.noise_multiplier, options.decay_rate, options.decayed_rounds, options.clip_norm,
            options.delta) == (1.0, 0.999, 0, 1.0, 1e-5)
    assert DEFENSES["adaptive_dp"].options is AdaptiveDPOptions


def test_the_first_round_at_the_defaults_is_dp_sgd_at_its_defaults():
    adaptive, dpsgd = AdaptiveDP(AdaptiveDPOptions()), DPSGD(DPSGDOptions())
    generator = torch.Generator()
    a, d = adaptive.private_gradients(generator), dpsgd.private_gradients(generator)
    assert (a.clip_norm, a.noise_multiplier) == (d.clip_norm, d.noise_multiplier)
    training = LocalTraining("fedavg", 3, 2, 0.1, "eval", False)
    assert adaptive.epsilon(training, 8) == dpsgd.epsilon(training, 8)


@pytest.mark.parametrize("overrides", [{"decay_rate": 1.5}, {"decay_rate": 0.0}, {"decayed_rounds": -1},
                                       {"clip_norm": 0.0}, {"noise_multiplier": -1.0}])
def test_out_of_range_schedule_options_are_refused(overrides):
    with pytest.raises(InvalidOption):
        parse_options(AdaptiveDPOptions, overrides)


def test_adaptive_dp_and_dp_sgd_cannot_both_run_in_the_local_training():
    chain = DefenseChain((DPSGD(DPSGDOptions()), AdaptiveDP(AdaptiveDPOptions())))
    with pytest.raises(ValueError, match="more than one"):
        chain.private_gradients(torch.Generator())


# --- a real cell ---------------------------------------------------------------------------

CELL = """
name = "adaptive-dp"
metrics = ["psnr"]
[factors]
dataset = [{ name = "digits", resolution = 16 }]
model = [{ name = "convnet", width = 4 }]
attack = [{ name = "ig", iterations = 2 }]
batch_size = [2]
labels = ["known"]
seed = [0]
defense = [{ name = "adaptive_dp", noise_multiplier = 2.0, decay_rate = 0.5, decayed_rounds = 1 }]
"""


def test_adaptive_dp_runs_in_a_real_cell_and_reports_the_decayed_rounds_epsilon(write_grid, tmp_path):
    from evalgrid.evaluation.context import CellContext
    from evalgrid.evaluation.pipeline import execute_cell
    from evalgrid.grid import load_grid
    from evalgrid.launch.provenance import current_provenance
    from evalgrid.store.layout import OutputDir

    cell = load_grid(write_grid(textwrap.dedent(CELL))).cells[0]
    context = CellContext(out_root=tmp_path / "out", grid_name="adaptive-dp", data_root=None, device="cpu",
                          provenance=current_provenance())
    execute_cell(cell, context)
    row = pq.read_table(OutputDir(context.out_root).done_result(cell.cell_id)).to_pylist()[0]
    assert row["status"] == "done", row["error_message"]
    assert math.isfinite(row["final_loss"])
    # FedSGD on B = 2 images: q = 1, one step, at σ_t = 2·0.5 = 1 (σ_0 = 2 would give less).
    assert row["epsilon"] == pytest.approx(gaussian_mechanism_epsilon(1.0, 1e-5), rel=1e-9)
