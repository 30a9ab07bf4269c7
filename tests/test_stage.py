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

import pytest
import torch

import evalgrid.fl.fedavg as fedavg_training
import evalgrid.fl.stage as stage
from evalgrid.cell import Choice, ChoiceChain
from evalgrid.data.digits import DigitsOptions
from evalgrid.errors import UserError
from evalgrid.fl.fedavg import sampled_clients
from evalgrid.fl.stage import (FedAvgStageOptions, InitialOptions, StageRequest, cached_rounds, global_model,
                               planned_trainings, train_stages)
from evalgrid.models import INITS, MODELS
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
    from evalgrid.setup import describe_dataset

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
    with open(folder / stage.LOCK_NAME, "a+") as lock:  # hold the setup's lock: both must queue behind it
        fcntl.flock(lock, fcntl.LOCK_EX)
        start.wait(timeout=120)
        time.sleep(0.5)
        fcntl.flock(lock, fcntl.LOCK_UN)
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

    monkeypatch.setattr(stage.fcntl, "flock", no_locks)
    with pytest.raises(UserError, match="filesystem with file locks"):
        global_model(request(), None, tmp_path, "cpu")
    assert stage.training_events(tmp_path) == []


# --------------------------------------------------------------------------- defended training


def _defense_options(name: str, **overrides):
    from evalgrid.defenses import DEFENSES

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
