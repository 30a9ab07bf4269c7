"""The defenses' defining properties, on a tiny model and random images."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evalgrid.catalogue import DEFENSES
from evalgrid.grid.cell import Choice
from evalgrid.defenses.base import ClientSide, fraction_count
from evalgrid.defenses.chain import DefenseChain, check_composition
from evalgrid.defenses.clipping import Clipping, ClippingOptions
from evalgrid.defenses.dpsgd import DPSGD, DPSGDOptions
from evalgrid.defenses.gaussian import Gaussian, GaussianOptions
from evalgrid.defenses.outpost import Outpost, OutpostOptions
from evalgrid.defenses.qsgd import QSGD, QSGDOptions
from evalgrid.defenses.secure_aggregation import SecureAggregation, SecureAggregationOptions
from evalgrid.defenses.signsgd import SignSGD, SignSGDOptions
from evalgrid.defenses.soteria import Soteria, SoteriaOptions
from evalgrid.defenses.topk import TopK, TopKOptions
from evalgrid.fl.local_training import local_update
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.fl.objective import loss_gradients
from evalgrid.catalogue.options import InvalidOption, parse_options
from evalgrid.fl.threat_model import ClientData, Normalization, SharedUpdate

BATCH = 4
NORMALIZATION = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
FEATURES = 8  # width of the representation Soteria prunes


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, FEATURES), nn.Sigmoid(), nn.Linear(FEATURES, 3))


def make_client(model: nn.Module | None = None, seed: int = 0) -> ClientSide:
    model = model or tiny_model()
    images = torch.rand((BATCH, 3, 4, 4), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0])
    training = LocalTraining("fedsgd", 1, BATCH, 1.0, "train", False)
    return ClientSide(model, ClientData(images, labels), NORMALIZATION, training, torch.Generator().manual_seed(seed))


def make_update(client: ClientSide) -> SharedUpdate:
    inputs = client.normalization.normalize(client.data.images)
    gradients = loss_gradients(client.model, inputs, client.data.labels)
    statistics = ((torch.zeros(2), torch.ones(2)),)
    return SharedUpdate(tuple(g.detach() for g in gradients), BATCH, statistics)


def default(name: str):
    component = DEFENSES[name]
    return component.build(component.options())


def flat(update: SharedUpdate) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in update.gradients])


# --- every registered defense -------------------------------------------------------------

@pytest.mark.parametrize("name", DEFENSES.names())
def test_defense_returns_new_update_keeping_samples_and_bn_statistics(name):
    client = make_client()
    update = make_update(client)
    out = default(name).apply(update, client)
    assert out is not update
    assert out.num_samples == update.num_samples
    assert out.bn_statistics is update.bn_statistics
    assert [g.shape for g in out.gradients] == [g.shape for g in update.gradients]


@pytest.mark.parametrize("name", DEFENSES.names())
def test_defense_never_mutates_the_input_update(name):
    client = make_client()
    update = make_update(client)
    before = [g.clone() for g in update.gradients]
    default(name).apply(update, client)
    assert all(torch.equal(a, b) for a, b in zip(update.gradients, before))


@pytest.mark.parametrize("name", DEFENSES.names())
def test_same_generator_seed_gives_same_output(name):
    first = default(name).apply(make_update(make_client(seed=3)), make_client(seed=3))
    second = default(name).apply(make_update(make_client(seed=3)), make_client(seed=3))
    assert all(torch.equal(a, b) for a, b in zip(first.gradients, second.gradients))


@pytest.mark.parametrize("name", DEFENSES.names())
def test_default_options_validate_against_their_own_schema(name):
    component = DEFENSES[name]
    assert parse_options(component.options, {}) == component.options()


def test_randomized_defenses_differ_across_seeds():
    for name in ("qsgd", "gaussian", "outpost"):
        defense = default(name) if name != "outpost" else Outpost(OutpostOptions(iteration=0))
        a = defense.apply(make_update(make_client(seed=1)), make_client(seed=1))
        b = defense.apply(make_update(make_client(seed=2)), make_client(seed=2))
        assert not torch.equal(flat(a), flat(b)), name


# --- QSGD ---------------------------------------------------------------------------------

def test_qsgd_levels_are_two_to_the_bits_minus_one():
    assert [QSGD(QSGDOptions(bits=b)).levels for b in (1, 2, 3, 4, 8)] == [1, 3, 7, 15, 255]


def test_qsgd_has_at_most_s_plus_one_distinct_magnitudes_per_tensor():
    client = make_client()
    update = make_update(client)
    for bits in (1, 2, 4):
        defense = QSGD(QSGDOptions(bits=bits))
        for g in defense.apply(update, client).gradients:
            assert g.abs().unique().numel() <= defense.levels + 1


@pytest.mark.parametrize("norm", ["max", "l2"])
def test_qsgd_magnitudes_are_multiples_of_norm_over_s(norm):
    client = make_client()
    update = make_update(client)
    defense = QSGD(QSGDOptions(bits=2, norm=norm))
    for original, quantized in zip(update.gradients, defense.apply(update, client).gradients):
        o = original.double()
        scale = o.abs().max() if norm == "max" else torch.linalg.vector_norm(o)
        levels = quantized.double().abs() / scale * defense.levels
        assert torch.allclose(levels, levels.round(), atol=1e-5)
        assert torch.all((quantized.sign() == original.sign()) | (quantized == 0))


def test_qsgd_max_norm_keeps_the_largest_coordinate_exactly():
    v = torch.tensor([0.3, -1.2, 0.05, 2.0, -0.7])
    quantized = QSGD(QSGDOptions(bits=2)).apply(SharedUpdate((v,), 1), make_client()).gradients[0]
    assert quantized[3].item() == pytest.approx(2.0)  # |v_i| = max: level s/s, whatever the draw


def test_qsgd_buckets_are_scaled_on_their_own():
    # s = 1 and every coordinate is 0 or its bucket's max: the quantization is exact, no draw matters.
    v = torch.tensor([2.0, 0.0, 0.0, -5.0, 7.0, 7.0, -1.0])
    defense = QSGD(QSGDOptions(bits=1, bucket_size=2))
    assert torch.equal(defense.apply(SharedUpdate((v,), 1), make_client()).gradients[0], v)
    whole = QSGD(QSGDOptions(bits=1)).apply(SharedUpdate((v,), 1), make_client()).gradients[0]
    assert set(whole.abs().tolist()) <= {0.0, 7.0}  # one bucket: every magnitude is 0 or max |v| = 7


# The SoK's 2-bit setting on a ResNet-18-sized layer (2.4 M elements, 3x3x512x512 ≈ 2.36 M).
LARGE = 2_359_296


@pytest.mark.parametrize("norm", ["max", "l2"])
def test_qsgd_nonzero_fraction_at_two_bits_on_a_large_tensor(norm):
    # P(Q(v_i) != 0) = min(1, s·|v_i|/‖v‖) (Alistarh et al. Sec. 3.1), written out here.
    v = torch.randn(LARGE, generator=torch.Generator().manual_seed(3), dtype=torch.float64).float()
    s = 3
    scale = v.double().abs().max() if norm == "max" else torch.linalg.vector_norm(v.double())
    p = (s * v.double().abs() / scale).clamp(max=1)
    expected = p.mean().item()
    quantized = QSGD(QSGDOptions(bits=2, norm=norm)).apply(SharedUpdate((v,), 1), make_client(seed=5)).gradients[0]
    measured = (quantized != 0).double().mean().item()
    std = math.sqrt((p * (1 - p)).sum().item()) / LARGE
    assert abs(measured - expected) < 6 * std + 1e-9
    if norm == "max":
        assert 0.35 < measured < 0.45  # max |v| ≈ 5.1σ here: E[min(1, 3|v|/5.1σ)] ≈ 0.41
    else:
        assert measured < 0.003  # ≈ 3·√(2/π)/√n: almost everything rounds to zero


@pytest.mark.parametrize("norm", ["max", "l2"])
def test_qsgd_is_unbiased_at_two_bits_on_a_large_tensor(norm):
    # E[Q(v)] = v: for fixed weights w, Σ w_i (Q_i − v_i) has mean 0 and variance
    # Σ w_i² (‖v‖/s)² p_i (1 − p_i), p_i the fractional level (Sec. 3.1, Lemma 3.1).
    generator = torch.Generator().manual_seed(4)
    v = torch.randn(LARGE, generator=generator, dtype=torch.float64).float()
    w = torch.randn(LARGE, generator=generator, dtype=torch.float64)
    s = 3
    vd = v.double()
    scale = vd.abs().max() if norm == "max" else torch.linalg.vector_norm(vd)
    scaled = s * vd.abs() / scale
    fraction = scaled - scaled.floor()
    variance = (w ** 2 * (scale / s) ** 2 * fraction * (1 - fraction)).sum().item()
    quantized = QSGD(QSGDOptions(bits=2, norm=norm)).apply(SharedUpdate((v,), 1), make_client(seed=6)).gradients[0]
    error = (w * (quantized.double() - vd)).sum().item()
    assert abs(error) < 6 * math.sqrt(variance)
    assert (quantized.double() - vd).abs().sum().item() > 0  # it did quantize


def test_qsgd_is_unbiased():
    # Var Q(v_i) = ‖v‖²/s² · p(1−p) ≤ ‖v‖²/(4s²): the mean of M draws is within 6 std of v_i.
    v = torch.tensor([0.3, -1.2, 0.05, 0.0, 2.0, -0.7, 0.9, -0.01])
    update = SharedUpdate((v,), 1)
    client = make_client(seed=7)
    defense = QSGD(QSGDOptions(bits=1))
    draws = 3000
    total = torch.zeros_like(v, dtype=torch.float64)
    for _ in range(draws):
        total += defense.apply(update, client).gradients[0].double()
    std_of_mean = torch.linalg.vector_norm(v).item() / (2 * defense.levels * math.sqrt(draws))
    assert torch.allclose(total / draws, v.double(), atol=6 * std_of_mean, rtol=0)


def test_qsgd_leaves_zero_tensor_zero():
    update = SharedUpdate((torch.zeros(5),), 1)
    assert torch.equal(QSGD(QSGDOptions()).apply(update, make_client()).gradients[0], torch.zeros(5))


# --- signSGD ------------------------------------------------------------------------------

def test_signsgd_output_is_the_sign():
    client = make_client()
    update = SharedUpdate((torch.tensor([0.5, -2.0, 0.0, 1e-9]),), 1)
    out = SignSGD(SignSGDOptions()).apply(update, client).gradients[0]
    assert out.tolist() == [1.0, -1.0, 0.0, 1.0]
    full = SignSGD(SignSGDOptions()).apply(make_update(client), client)
    assert set(flat(full).unique().tolist()) <= {-1.0, 0.0, 1.0}


# --- top-k --------------------------------------------------------------------------------

def test_fraction_count_is_the_ceiling_without_float_noise():
    assert fraction_count(0.1, 30) == 3  # 0.1·30 = 3.0000000000000004 in floats
    assert fraction_count(0.25, 10) == 3
    assert fraction_count(1.0, 7) == 7
    assert fraction_count(0.0, 7) == 0


def test_topk_per_layer_keeps_exactly_k_largest_of_each_tensor():
    client = make_client()
    update = make_update(client)
    out = TopK(TopKOptions(keep=0.3, scope="layer")).apply(update, client)
    for original, sparse in zip(update.gradients, out.gradients):
        k = math.ceil(0.3 * original.numel())
        kept = sparse != 0
        assert int(kept.sum()) == k
        assert torch.equal(sparse[kept], original[kept])
        assert original.abs()[kept].min() >= original.abs()[~kept].max()


def test_topk_global_keeps_exactly_k_largest_of_the_whole_update():
    client = make_client()
    update = make_update(client)
    out = flat(TopK(TopKOptions(keep=0.2, scope="global")).apply(update, client))
    original = flat(update)
    kept = out != 0
    assert int(kept.sum()) == math.ceil(0.2 * original.numel())
    assert original.abs()[kept].min() >= original.abs()[~kept].max()


def test_topk_breaks_ties_towards_the_first_coordinate():
    update = SharedUpdate((torch.tensor([1.0, -1.0, 1.0, 0.5]),), 1)
    out = TopK(TopKOptions(keep=0.5)).apply(update, make_client()).gradients[0]
    assert out.tolist() == [1.0, -1.0, 0.0, 0.0]


def test_topk_smallest_keeps_exactly_k_smallest_magnitudes_per_tensor_or_overall():
    client = make_client()
    update = make_update(client)
    per_layer = TopK(TopKOptions(keep=0.3, scope="layer", kept="smallest")).apply(update, client)
    pairs = list(zip(update.gradients, per_layer.gradients))
    overall = TopK(TopKOptions(keep=0.2, scope="global", kept="smallest")).apply(update, client)
    pairs.append((flat(update), flat(overall)))
    for (original, sparse), keep in zip(pairs, [0.3] * len(update.gradients) + [0.2]):
        kept = torch.zeros(original.shape, dtype=torch.bool)
        order = sorted(range(original.numel()), key=lambda i: abs(float(original.reshape(-1)[i])))
        kept.view(-1)[order[:math.ceil(keep * original.numel())]] = True
        assert torch.equal(sparse[kept], original[kept]) and not sparse[~kept].any()


def test_topk_smallest_and_largest_split_a_tensor_between_them():
    update = SharedUpdate((torch.tensor([0.25, -3.0, 2.0, -0.5]),), 1)
    client = make_client()
    bottom = TopK(TopKOptions(keep=0.5, kept="smallest")).apply(update, client).gradients[0]
    top = TopK(TopKOptions(keep=0.5)).apply(update, client).gradients[0]
    assert bottom.tolist() == [0.25, 0.0, 0.0, -0.5] and top.tolist() == [0.0, -3.0, 2.0, 0.0]


def test_topk_kept_at_its_default_leaves_the_ids_alone():
    from evalgrid.catalogue.options import canonical_options

    assert "kept" not in canonical_options(TopKOptions())


def test_topk_rejects_keep_of_zero():
    with pytest.raises(InvalidOption):
        parse_options(TopKOptions, {"keep": 0.0})


# --- clipping -----------------------------------------------------------------------------

def test_value_clipping_bounds_every_coordinate():
    client = make_client()
    update = make_update(client)
    bound = 0.5 * flat(update).abs().max().item()
    out = flat(Clipping(ClippingOptions(bound=bound, mode="value")).apply(update, client))
    assert out.abs().max() <= bound
    inside = flat(update).abs() <= bound
    assert torch.equal(out[inside], flat(update)[inside])


def test_norm_clipping_bounds_the_update_norm_and_keeps_its_direction():
    client = make_client()
    update = make_update(client)
    bound = 0.5 * torch.linalg.vector_norm(flat(update)).item()
    out = flat(Clipping(ClippingOptions(bound=bound, mode="norm")).apply(update, client))
    assert torch.linalg.vector_norm(out).item() == pytest.approx(bound, rel=1e-5)
    assert torch.allclose(out / bound, flat(update) / (2 * bound), atol=1e-6)


@pytest.mark.parametrize("mode", ["value", "norm"])
def test_clipping_leaves_small_updates_unchanged(mode):
    client = make_client()
    update = make_update(client)
    out = Clipping(ClippingOptions(bound=1e6, mode=mode)).apply(update, client)
    assert all(torch.equal(a, b) for a, b in zip(out.gradients, update.gradients))


# --- Gaussian noise -----------------------------------------------------------------------

def test_gaussian_noise_has_the_requested_std():
    # The sample std of n draws has std σ/√(2n) ≈ 0.16 % here; allow 5 of them.
    n, sigma = 100_000, 0.3
    update = SharedUpdate((torch.zeros(n, dtype=torch.float64),), 1)
    noise = Gaussian(GaussianOptions(sigma=sigma)).apply(update, make_client()).gradients[0]
    assert noise.std().item() == pytest.approx(sigma, rel=5 / math.sqrt(2 * n))
    assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(n)


# --- DP-SGD -------------------------------------------------------------------------------

def test_dpsgd_asks_local_training_for_its_clipping_and_noise():
    generator = torch.Generator()
    privacy = DPSGD(DPSGDOptions(clip_norm=0.5, noise_multiplier=2.0)).private_gradients(generator)
    assert (privacy.clip_norm, privacy.noise_multiplier, privacy.generator) == (0.5, 2.0, generator)


def test_dpsgd_with_tiny_clip_norm_clips_every_per_sample_gradient():
    client = make_client()
    clip = 1e-4
    privacy = DPSGD(DPSGDOptions(clip_norm=clip, noise_multiplier=0.0)).private_gradients(client.generator)
    inputs = client.normalization.normalize(client.data.images)
    shared = local_update(client.model, inputs, client.data.labels, client.training, privacy=privacy)
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in shared)).item()
    assert norm <= clip * (1 + 1e-5)
    # Every sample was clipped to norm exactly C: the result is C times the mean unit gradient.
    units = []
    for index in range(BATCH):
        g = loss_gradients(client.model, inputs[index:index + 1], client.data.labels[index:index + 1])
        g_norm = torch.sqrt(sum((t.double() ** 2).sum() for t in g))
        assert g_norm > clip
        units.append(torch.cat([t.reshape(-1) for t in g]).double() / g_norm)
    expected = clip * torch.stack(units).mean(0)
    assert torch.allclose(torch.cat([g.reshape(-1) for g in shared]).double(), expected, atol=1e-9)


def test_dpsgd_leaves_the_shared_update_as_it_is():
    client = make_client()
    update = make_update(client)
    out = DPSGD(DPSGDOptions()).apply(update, client)
    assert all(a is b for a, b in zip(out.gradients, update.gradients))


def test_dpsgd_epsilon_uses_the_local_training_sampling_rate_and_steps():
    from evalgrid.defenses.accountant import epsilon

    defense = DPSGD(DPSGDOptions(noise_multiplier=1.1, delta=1e-5))
    training = LocalTraining("fedavg", 10, 4, 0.1, "train", False)
    assert defense.epsilon(training, 16) == epsilon(1.1, 0.25, 10, 1e-5)


# --- Soteria ------------------------------------------------------------------------------

def reference_soteria_scores(client: ClientSide) -> torch.Tensor:
    """‖r_i‖/‖∂r_i/∂X‖ with an explicit Jacobian of the representation (independent of the defense)."""
    encoder = client.model[:3]  # Flatten, Linear, Sigmoid: the input of the last Linear
    inputs = client.normalization.normalize(client.data.images)
    jacobian = torch.autograd.functional.jacobian(encoder, inputs)  # (B, F, B, C, H, W)
    per_feature = jacobian.permute(1, 0, 2, 3, 4, 5).reshape(FEATURES, -1)
    return torch.linalg.vector_norm(encoder(inputs), dim=0) / torch.linalg.vector_norm(per_feature, dim=1)


def test_soteria_zeroes_exactly_the_chosen_fraction_of_last_layer_columns():
    client = make_client()
    update = make_update(client)
    out = Soteria(SoteriaOptions(prune_ratio=0.5)).apply(update, client)
    weight, original = out.gradients[2], update.gradients[2]
    zero_columns = (weight == 0).all(dim=0)
    assert int(zero_columns.sum()) == FEATURES // 2
    assert torch.equal(weight[:, ~zero_columns], original[:, ~zero_columns])
    for index in (0, 1, 3):  # every other gradient untouched
        assert torch.equal(out.gradients[index], update.gradients[index])


def test_soteria_prunes_the_features_with_the_largest_ratio():
    client = make_client()
    out = Soteria(SoteriaOptions(prune_ratio=0.25)).apply(make_update(client), client)
    pruned = (out.gradients[2] == 0).all(dim=0)
    expected = torch.zeros(FEATURES, dtype=torch.bool)
    expected[reference_soteria_scores(client).topk(2).indices] = True
    assert torch.equal(pruned, expected)


def test_soteria_leaves_the_client_model_untouched():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, FEATURES), nn.BatchNorm1d(FEATURES), nn.ReLU(),
                          nn.Linear(FEATURES, 3))
    client = make_client(model)
    update = make_update(client)  # a train-mode forward: moves the BN running statistics
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Soteria(SoteriaOptions()).apply(update, client)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- OUTPOST ------------------------------------------------------------------------------

def test_outpost_changes_the_update():
    client = make_client()
    update = make_update(client)
    out = Outpost(OutpostOptions(iteration=0)).apply(update, client)
    assert not torch.equal(flat(out), flat(update))


def test_outpost_without_noise_prunes_exactly_the_smallest_fraction_of_each_layer():
    client = make_client()
    update = make_update(client)
    out = Outpost(OutpostOptions(prune_ratio=0.5, noise_base=0.0, iteration=0)).apply(update, client)
    for original, pruned in zip(update.gradients, out.gradients):
        zeroed = pruned == 0
        assert int(zeroed.sum()) == math.ceil(0.5 * original.numel())
        assert torch.equal(pruned[~zeroed], original[~zeroed])
        assert original.abs()[zeroed].max() <= original.abs()[~zeroed].min()


def test_outpost_adds_noise_only_to_the_largest_fisher_information_coordinates():
    client = make_client()
    update = make_update(client)
    phi = 0.3
    out = flat(Outpost(OutpostOptions(prune_ratio=0.0, phi=phi, iteration=0)).apply(update, client))
    original = flat(update)
    changed = out != original
    count = math.ceil(phi * original.numel())
    assert 0 < int(changed.sum()) <= count
    assert (original[changed] ** 2).min() >= torch.sort(original ** 2, descending=True).values[count - 1]


def test_outpost_noise_std_is_weight_variance_times_noise_base():
    torch.manual_seed(0)
    model = nn.Linear(200, 100)
    with torch.no_grad():
        model.weight.normal_(0, 0.5)
    client = make_client(model)
    update = SharedUpdate((torch.zeros(100, 200), torch.zeros(100)), 1)
    options = OutpostOptions(prune_ratio=0.0, phi=1.0, noise_base=0.8, iteration=0)
    noise = Outpost(options).apply(update, client).gradients[0]
    expected = min(model.weight.var().item(), 1.0) * 0.8
    assert noise.std().item() == pytest.approx(expected, rel=5 / math.sqrt(2 * noise.numel()))


def test_outpost_perturbs_with_probability_decaying_in_the_iteration():
    client = make_client(seed=11)
    update = make_update(client)
    defense = Outpost(OutpostOptions(beta=1.0, iteration=1))  # probability 1/2
    assert defense.probability == 0.5
    trials = 400
    changed = sum(not torch.equal(flat(defense.apply(update, client)), flat(update)) for _ in range(trials))
    assert abs(changed / trials - 0.5) < 5 * math.sqrt(0.25 / trials)


def test_outpost_default_probability_is_the_first_local_step():
    assert Outpost(OutpostOptions()).probability == pytest.approx(1 / 1.125)


# --- secure aggregation and compositions --------------------------------------------------

def test_secure_aggregation_sets_aggregated_clients_and_is_the_identity():
    client = make_client()
    update = make_update(client)
    defense = SecureAggregation(SecureAggregationOptions(clients=5))
    assert defense.aggregated_clients == 5
    assert all(torch.equal(a, b) for a, b in zip(defense.apply(update, client).gradients, update.gradients))


def test_secure_aggregation_needs_two_clients():
    with pytest.raises(InvalidOption):
        parse_options(SecureAggregationOptions, {"clients": 1})


def test_chain_applies_defenses_in_order():
    client = make_client()
    update = make_update(client)
    clip_then_sign = DefenseChain((Clipping(ClippingOptions(bound=1.0, mode="norm")), SignSGD(SignSGDOptions())))
    sign_then_clip = DefenseChain((SignSGD(SignSGDOptions()), Clipping(ClippingOptions(bound=1.0, mode="norm"))))
    assert set(flat(clip_then_sign.apply(update, client)).unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.linalg.vector_norm(flat(sign_then_clip.apply(update, client))).item() == pytest.approx(1.0, rel=1e-5)


def test_empty_chain_is_no_defense():
    client = make_client()
    update = make_update(client)
    chain = DefenseChain()
    out = chain.apply(update, client)
    assert out is not update and all(a is b for a, b in zip(out.gradients, update.gradients))
    assert (chain.aggregated_clients, chain.private_gradients(client.generator)) == (1, None)
    assert chain.epsilon(client.training, BATCH) is None


def test_chain_collects_dpsgd_and_secure_aggregation_attributes():
    chain = DefenseChain.from_choices([Choice("dpsgd", DPSGDOptions(clip_norm=0.5)),
                                       Choice("soteria", SoteriaOptions()),
                                       Choice("secure_aggregation", SecureAggregationOptions(clients=3))])
    generator = torch.Generator()
    assert chain.aggregated_clients == 3
    assert chain.private_gradients(generator).clip_norm == 0.5
    training = LocalTraining("fedsgd", 1, BATCH, 1.0, "train", False)
    assert chain.epsilon(training, BATCH) == DPSGD(DPSGDOptions(clip_norm=0.5)).epsilon(training, BATCH)


@pytest.mark.parametrize("names, message", [
    (["dpsgd", "soteria", "dpsgd"], "twice"),
    (["qsgd", "qsgd"], "twice"),
    (["secure_aggregation", "qsgd"], "last"),
    (["secure_aggregation", "secure_aggregation"], "twice"),
    (["qsgdd"], "Did you mean 'qsgd'"),
])
def test_check_composition_rejects_invalid_compositions(names, message):
    with pytest.raises(InvalidOption, match=message):
        check_composition(names)


def test_check_composition_accepts_valid_compositions():
    check_composition([])
    check_composition(["dpsgd", "soteria"])
    check_composition(["qsgd", "secure_aggregation"])


def test_chain_refuses_secure_aggregation_before_another_defense():
    with pytest.raises(ValueError, match="last"):
        DefenseChain((SecureAggregation(SecureAggregationOptions()), SignSGD(SignSGDOptions())))
