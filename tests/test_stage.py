"""The training stage: FedAvg on digits, its deterministic resume, and the shared on-disk cache."""

from __future__ import annotations

import copy
import dataclasses
import errno
import fcntl
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import evalgrid.fl.fedavg as fedavg_training
import evalgrid.fl.stage_cache as stage
import evalgrid.store.lock as lock
from evalgrid.grid.cell import Choice, ChoiceChain
from evalgrid.data.digits import DigitsOptions
from evalgrid.errors import UserError
from evalgrid.fl.fedavg import sampled_clients
from evalgrid.fl.stage import (FedAvgStageOptions, InitialOptions, StageRequest, cached_rounds,
                               planned_trainings)
from evalgrid.fl.stage_cache import global_model, train_stages
from evalgrid.catalogue import INITS, MODELS
from evalgrid.store.atomic import TMP_MARKER


def init_choice(name: str = "default") -> Choice:
    return Choice(name, INITS[name].options())




def tiny_convnet() -> Choice:
    return Choice("convnet", dataclasses.replace(MODELS["convnet"].options(), width=4))  # has BatchNorm


def fedavg(**overrides) -> Choice:
    options = dict(round=1, clients=4, clients_per_round=2, local_epochs=1, batch_size=8, lr=0.05,
                   samples_per_client=16, test_samples=100)
    options.update(overrides)
    return Choice("fedavg", FedAvgStageOptions(**options))


def request(stage_choice: Choice | None = None, *, seed: int = 0, model: Choice | None = None,
            init: Choice | None = None, defense: tuple[Choice, ...] = ()) -> StageRequest:
    return StageRequest(Choice("digits", DigitsOptions(resolution=16)), 16, model or tiny_convnet(),
                        init or init_choice(), stage_choice or fedavg(), seed, defense)


def _digits_info():
    from evalgrid.evaluation.building import describe_dataset

    return describe_dataset(Choice("digits", DigitsOptions(resolution=16)), 16, None)


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def assert_same_state(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


# --------------------------------------------------------------------------- training


def test_fedavg_raises_test_accuracy_on_digits(tmp_path):
    common = dict(clients=4, clients_per_round=2, local_epochs=2, samples_per_client=64, test_samples=300)
    _, before = global_model(request(fedavg(round=0, **common)), None, tmp_path, "cpu")
    _, after = global_model(request(fedavg(round=3, **common)), None, tmp_path, "cpu")
    assert after.trained_now and after.round == 3
    assert after.test_accuracy > before.test_accuracy + 0.15, (before.test_accuracy, after.test_accuracy)


@pytest.mark.parametrize("split, defenses", [("iid", ()), ("dirichlet", ("dpsgd", "gaussian"))])
def test_resuming_from_a_cached_round_equals_training_in_one_go(tmp_path, split, defenses):
    chain = tuple(Choice(name, _defense_options(name)) for name in defenses)  # random draws of their own

    def at(round_: int) -> StageRequest:
        return request(fedavg(round=round_, split=split), defense=chain)

    _, first = global_model(at(1), None, tmp_path / "stepwise", "cpu")
    resumed, record = global_model(at(2), None, tmp_path / "stepwise", "cpu")
    in_one_go, direct = global_model(at(2), None, tmp_path / "direct", "cpu")
    assert (first.trained_now, record.resumed_from, direct.resumed_from) == (True, 1, 0)
    assert_same_state(state_of(resumed), state_of(in_one_go))  # BatchNorm buffers included


def test_training_moves_weights_and_batchnorm_statistics(tmp_path):
    initial, _ = global_model(request(fedavg(round=0)), None, tmp_path, "cpu")
    trained, _ = global_model(request(fedavg(round=1)), None, tmp_path, "cpu")
    before, after = state_of(initial), state_of(trained)
    moved = [name for name in before if not torch.equal(before[name], after[name])]
    assert any(name.endswith("weight") for name in moved)
    assert any(name.endswith("running_mean") for name in moved)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_client_batchnorm_statistics_follow_pytorchs_running_update(momentum):
    from torch.func import functional_call

    torch.manual_seed(0)
    model = MODELS["convnet"].build(tiny_convnet().options, _digits_info())
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = momentum
    reference = copy.deepcopy(model)
    batches = [torch.randn(6, 1, 16, 16), torch.randn(4, 1, 16, 16)]
    with fedavg_training._replaying_bn_statistics(model) as replay:
        for batch in batches:  # as local_update runs its steps: on copies of the buffers
            state = {**dict(model.named_parameters()), **{n: b.clone() for n, b in model.named_buffers()}}
            functional_call(model, state, (batch,))
    for batch in batches:
        reference(batch)
    replayed = replay()
    for name, buffer in reference.named_buffers():
        assert torch.allclose(replayed[name], buffer, rtol=1e-5, atol=1e-7), name


def test_round_zero_is_the_initialised_model_and_is_not_written(tmp_path):
    model, record = global_model(request(Choice("initial", InitialOptions(test_samples=50))), None, tmp_path, "cpu")
    assert (record.round, record.trained_now) == (0, False)
    assert 0.0 <= record.test_accuracy <= 1.0
    assert_same_state(state_of(model), state_of(stage.initial_model(request(), None)))
    assert not any(tmp_path.rglob("*.pt"))


def test_the_server_samples_k_distinct_clients_per_round_from_the_seed():
    chosen = [sampled_clients(request(fedavg(clients=10, clients_per_round=3)), r) for r in range(1, 6)]
    assert all(len(set(c)) == 3 and all(0 <= i < 10 for i in c) for c in chosen)
    assert chosen == [sampled_clients(request(fedavg(clients=10, clients_per_round=3)), r) for r in range(1, 6)]
    assert len({tuple(c) for c in chosen}) > 1


def test_more_clients_per_round_than_clients_is_refused():
    with pytest.raises(UserError, match="clients_per_round"):
        request(fedavg(clients=2, clients_per_round=3)).plan


# --------------------------------------------------------------------------- local steps (FedLeak's rounds)


def lenet() -> Choice:
    return Choice("lenet", MODELS["lenet"].options())  # no BatchNorm, no dropout: the weights are all there is


def test_local_steps_run_exactly_u_forward_passes_of_b_samples_per_sampled_client_and_round():
    wanted = request(fedavg(round=2, clients=4, clients_per_round=2, local_steps=3, batch_size=5,
                            samples_per_client=16))
    model = stage.initial_model(wanted, None)
    batches: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: batches.append(len(args[0])))
    try:
        fedavg_training.train_global_model(wanted, None, "cpu", model=model)
    finally:
        handle.remove()
    assert batches == [5] * (2 * 2 * 3)  # rounds · clients per round · U, each of b


def test_local_steps_equal_a_hand_written_sgd_loop_over_minibatches_reshuffled_when_a_pass_runs_out():
    from torch.func import functional_call

    from evalgrid.fl.objective import mean_loss
    from evalgrid.evaluation.building import STAGE_STREAM, load_dataset, stream_seed

    steps, size, shard_size, lr = 4, 5, 16, 0.05  # a pass holds 3 batches of 5: step 4 reshuffles
    wanted = request(fedavg(round=2, clients=3, clients_per_round=2, local_steps=steps, batch_size=size,
                            samples_per_client=shard_size, lr=lr), model=lenet())
    trained = fedavg_training.train_global_model(wanted, None, "cpu")

    train = load_dataset(wanted.dataset, wanted.resolution, None, split="train")
    shards = fedavg_training.client_shards(wanted, train)
    model = stage.initial_model(wanted, None)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    for round_ in (1, 2):
        clients = sampled_clients(wanted, round_)
        averaged = {name: torch.zeros_like(w) for name, w in weights.items()}
        for client in clients:
            shuffle = np.random.default_rng(stream_seed(wanted.seed, STAGE_STREAM, round_, 1, client + 1))
            left: list[int] = []
            local = dict(weights)
            for _ in range(steps):
                if len(left) < size:  # the shard is exhausted: a new order, the remainder sits out
                    left = shuffle.permutation(shard_size).tolist()
                batch, left = left[:size], left[size:]
                pixels, labels = train.batch(shards[client][batch].tolist())
                current = {name: w.detach().requires_grad_(True) for name, w in local.items()}
                loss = mean_loss(functional_call(model, current, (train.info.normalization.normalize(pixels),)),
                                 labels)
                grads = torch.autograd.grad(loss, list(current.values()))
                local = {name: w.detach() - lr * g for (name, w), g in zip(current.items(), grads)}
            for name, w in local.items():
                averaged[name] += w / len(clients)  # IID shards of equal size: equal shares
        weights = averaged
    for name, parameter in trained.named_parameters():
        assert torch.allclose(parameter.detach(), weights[name], atol=1e-6), name


def test_local_steps_resumed_from_a_cached_round_equal_training_in_one_go(tmp_path):
    def at(round_: int) -> StageRequest:  # 3 steps of 6 over 16 samples: every round reshuffles once
        return request(fedavg(round=round_, local_steps=3, batch_size=6))

    global_model(at(1), None, tmp_path / "stepwise", "cpu")
    resumed, record = global_model(at(2), None, tmp_path / "stepwise", "cpu")
    in_one_go, direct = global_model(at(2), None, tmp_path / "direct", "cpu")
    assert (record.resumed_from, direct.resumed_from) == (1, 0)
    assert_same_state(state_of(resumed), state_of(in_one_go))  # BatchNorm buffers included


def test_local_steps_differ_from_local_epochs_and_a_batch_above_the_shard_is_the_whole_shard(tmp_path):
    epochs, _ = global_model(request(fedavg(local_epochs=1, batch_size=8)), None, tmp_path / "e", "cpu")
    one_step, _ = global_model(request(fedavg(local_steps=1, batch_size=8)), None, tmp_path / "u", "cpu")
    assert any(not torch.equal(p, q) for p, q in zip(epochs.parameters(), one_step.parameters()))
    # one step of a batch above the shard (16 samples) is one epoch of a full-shard batch
    full, _ = global_model(request(fedavg(local_epochs=1, batch_size=16)), None, tmp_path / "f", "cpu")
    above, _ = global_model(request(fedavg(local_steps=1, batch_size=100)), None, tmp_path / "a", "cpu")
    for p, q in zip(full.parameters(), above.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_a_negative_local_steps_is_refused():
    from evalgrid.catalogue.options import InvalidOption, parse_options

    with pytest.raises(InvalidOption, match=">= 0"):
        parse_options(FedAvgStageOptions, {"local_steps": -1})


def test_local_steps_at_its_default_is_not_in_the_setup_key_and_any_other_value_is():
    assert "local_steps" not in request().setup()["stage"]["options"]  # the keys of grids from before it
    assert "local_steps" not in request().stage.canonical()["options"]  # and their cells' ids
    assert request(fedavg(local_steps=0)).setup_key() == request().setup_key()
    assert len({request(fedavg(local_steps=u)).setup_key() for u in (0, 1, 2)}) == 3


def test_local_epochs_are_not_in_the_setup_key_of_a_federation_that_counts_local_steps():
    assert request(fedavg(local_steps=2, local_epochs=1)).setup_key() == \
        request(fedavg(local_steps=2, local_epochs=5)).setup_key()
    assert request(fedavg(local_epochs=1)).setup_key() != request(fedavg(local_epochs=5)).setup_key()


# --------------------------------------------------------------------------- keys


def test_every_setup_ingredient_changes_the_setup_key():
    base = request()
    variants = [
        request(seed=1),
        request(init=init_choice("wide-uniform")),
        request(model=Choice("convnet", dataclasses.replace(MODELS["convnet"].options(), width=5))),
        request(fedavg(lr=0.1)),
        request(fedavg(split="dirichlet")),
        request(fedavg(clients_per_round=3)),
        request(defense=(Choice("clipping", _defense_options("clipping")),)),
        dataclasses.replace(base, resolution=32),
    ]
    keys = {base.setup_key()} | {variant.setup_key() for variant in variants}
    assert len(keys) == len(variants) + 1


def test_round_and_test_samples_are_not_in_the_setup_key():
    base = request(fedavg(round=1, test_samples=100))
    other = request(fedavg(round=5, test_samples=7))
    assert base.setup_key() == other.setup_key()
    assert base.key() != other.key() and base.key().endswith("round-1")
    assert request(fedavg(round=1, test_samples=7)).key() == base.key()


def test_the_datasets_split_option_is_not_in_the_setup_key():
    test_split = dataclasses.replace(request(), dataset=Choice("digits", DigitsOptions(resolution=16, split="test")))
    assert test_split.setup_key() == request().setup_key()


def test_a_cells_defense_chain_is_accepted_as_a_tuple_of_choices():
    clipping = Choice("clipping", _defense_options("clipping"))
    assert request(defense=ChoiceChain((clipping,))).defense == (clipping,)


# --------------------------------------------------------------------------- the cache


def test_a_second_request_reads_the_cached_model(tmp_path):
    first_model, first = global_model(request(), None, tmp_path, "cpu")
    second_model, second = global_model(request(), None, tmp_path, "cpu")
    assert (first.trained_now, second.trained_now) == (True, False)
    assert first.test_accuracy == second.test_accuracy and first.key == second.key
    assert_same_state(state_of(first_model), state_of(second_model))


def test_another_test_sample_count_reuses_the_weights_and_stores_its_accuracy(tmp_path):
    global_model(request(fedavg(test_samples=100)), None, tmp_path, "cpu")
    _, record = global_model(request(fedavg(test_samples=40)), None, tmp_path, "cpu")
    assert not record.trained_now
    meta = json.loads((tmp_path / request().setup_key() / "round-1.json").read_text())
    assert set(meta["test_accuracy"]) == {"100", "40"}
    assert meta["test_accuracy"]["40"] == record.test_accuracy


def test_cache_files_are_complete_and_no_temporaries_are_left(tmp_path):
    global_model(request(fedavg(round=2)), None, tmp_path, "cpu", also_rounds=[1])
    folder = tmp_path / request().setup_key()
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "round-1.json", "round-1.pt",
                                                        "round-2.json", "round-2.pt", stage.TRAININGS_DIR]
    assert not [p for p in tmp_path.rglob("*") if TMP_MARKER in p.name]
    meta = json.loads((folder / "round-2.json").read_text())
    assert meta["key"] == request(fedavg(round=2)).key() and meta["round"] == 2
    assert meta["request"] == request(fedavg(round=2)).canonical()
    torch.load(folder / "round-2.pt", weights_only=True)


def test_train_stages_caches_every_requested_round_training_each_setup_once(tmp_path):
    requests = [request(fedavg(round=2)), request(fedavg(round=1)), request(fedavg(round=2, test_samples=50)),
                request(Choice("initial", InitialOptions()))]
    planned = planned_trainings(requests, tmp_path)
    assert [(r.round, cached) for r, cached in planned] == [(2, False), (1, False)]
    records = train_stages(requests, None, tmp_path, "cpu")
    assert [(r.round, r.trained_now, r.resumed_from) for r in records] == [(1, True, 0), (2, True, 1)]
    assert cached_rounds(tmp_path / request().setup_key()) == [1, 2]
    assert [cached for _, cached in planned_trainings(requests, tmp_path)] == [True, True]


def _train_in_child(stage_request: StageRequest, cache_dir: Path, start, results) -> None:
    torch.set_num_threads(1)
    start.wait()
    model, record = global_model(stage_request, None, cache_dir, "cpu")
    results.put((record.trained_now, record.waited_seconds, {name: t.numpy() for name, t in state_of(model).items()}))


def test_two_processes_asking_for_the_same_stage_train_it_once(tmp_path):
    wanted = request(fedavg(round=2))
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_train_in_child, args=(wanted, tmp_path, start, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    folder = tmp_path / wanted.setup_key()
    folder.mkdir(parents=True)
    with open(folder / lock.LOCK_NAME, "a+") as held:  # hold the setup's lock: both must queue behind it
        fcntl.flock(held, fcntl.LOCK_EX)
        start.wait(timeout=120)
        time.sleep(0.5)
        fcntl.flock(held, fcntl.LOCK_UN)
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sorted(trained for trained, _, _ in outcomes) == [False, True]
    assert len(stage.training_events(tmp_path)) == 1
    assert all(waited > 0.2 for _, waited, _ in outcomes)
    first, second = ({name: torch.from_numpy(a) for name, a in state.items()} for _, _, state in outcomes)
    assert_same_state(first, second)


def test_a_stage_cache_on_a_filesystem_without_locks_is_refused_with_the_reason(tmp_path, monkeypatch):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock.fcntl, "flock", no_locks)
    with pytest.raises(UserError, match="filesystem with file locks"):
        global_model(request(), None, tmp_path, "cpu")
    assert stage.training_events(tmp_path) == []


# --------------------------------------------------------------------------- defended training


def _defense_options(name: str, **overrides):
    from evalgrid.catalogue import DEFENSES

    return dataclasses.replace(DEFENSES[name].options(), **overrides)


def test_defended_training_applies_the_chain_to_every_client_update(tmp_path):
    clipping = (Choice("clipping", _defense_options("clipping", bound=1e-4)),)
    plain, _ = global_model(request(), None, tmp_path, "cpu")
    clipped, record = global_model(request(defense=clipping), None, tmp_path, "cpu")
    again, _ = global_model(request(defense=clipping), None, tmp_path / "again", "cpu")
    initial = state_of(stage.initial_model(request(), None))
    assert record.trained_now
    assert_same_state(state_of(clipped), state_of(again))
    # each client moves every weight by at most lr · 1e-4; the average moves no further
    for name, weight in clipped.named_parameters():
        assert (weight.detach() - initial[name]).abs().max() <= 0.05 * 1e-4 + 1e-6, name  # + float32 rounding
    assert any((p.detach() - initial[n]).abs().max() > 1e-3 for n, p in plain.named_parameters())


def test_dp_sgd_training_is_deterministic_and_differs_from_plain_training(tmp_path):
    dpsgd = (Choice("dpsgd", _defense_options("dpsgd")),)
    plain, _ = global_model(request(), None, tmp_path, "cpu")
    private, _ = global_model(request(defense=dpsgd), None, tmp_path / "one", "cpu")
    again, _ = global_model(request(defense=dpsgd), None, tmp_path / "two", "cpu")
    assert_same_state(state_of(private), state_of(again))
    assert any(not torch.equal(p, q) for p, q in zip(plain.parameters(), private.parameters()))
