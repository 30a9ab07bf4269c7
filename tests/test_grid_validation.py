"""Every malformed grid is refused before anything runs: exit 2, one paragraph naming the file,
the key, the bad value and the valid choices, no traceback, nothing written."""

from __future__ import annotations

import pytest

from conftest import MINIMAL_GRID


def refused(cli, grid_path, tmp_path):
    """Run the grid and return the error text, asserting the contract common to every refusal."""
    out = tmp_path / "out"
    result = cli("run", grid_path, "--out", out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not out.exists(), "a refused grid must not create the output directory"
    text = result.output.strip()
    assert text.startswith("error: ")
    assert "\n" not in text, "the error must be one paragraph"
    assert grid_path.name in text, "the error must name the file"
    return text


def test_toml_syntax_error_names_the_line(write_grid, cli, tmp_path):
    text = refused(cli, write_grid('name = "x"\n[factors]\nmodel = = ["lenet"]\nseed = [0]\n'), tmp_path)
    assert "invalid TOML" in text and "line 3" in text


def test_unknown_top_level_key_suggests_the_right_one(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + '\n[factor]\nseed = [1]\n'), tmp_path)
    assert "factor:" in text and "Did you mean 'factors'?" in text and "Valid keys:" in text


def test_unknown_factor_lists_the_factors(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID.replace("batch_size = [1]", "batchsize = [1]")), tmp_path)
    assert "factors.batchsize" in text and "Did you mean 'batch_size'?" in text and "labels" in text


@pytest.mark.parametrize("old, new, key, bad, suggestion", [
    ('attack = ["idlg",', 'attack = ["dlq",', "factors.attack[0]", "'dlq'", "dlg"),
    ('model = ["lenet"]', 'model = ["lenett"]', "factors.model[0]", "'lenett'", "lenet"),
    ('dataset = ["digits"]', 'dataset = ["digit"]', "factors.dataset[0]", "'digit'", "digits"),
    ('"ssim", "label_acc"]', '"ssmi", "label_acc"]', "metrics[1]", "'ssmi'", "ssim"),
])
def test_unknown_value_names_key_value_and_choices(write_grid, cli, tmp_path, old, new, key, bad, suggestion):
    text = refused(cli, write_grid(MINIMAL_GRID.replace(old, new)), tmp_path)
    assert key in text and bad in text
    assert f"Did you mean '{suggestion}'?" in text and "Valid choices:" in text


def test_inline_option_not_accepted_by_the_attack(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID.replace('"idlg", {', '{ name = "idlg", tv = 0.1 }, {')), tmp_path)
    assert "factors.attack[0].tv" in text and "unknown option 'tv'" in text and "iterations" in text


def test_override_option_typo_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID.replace("[attacks.ig]\niterations", "[attacks.ig]\nitrations")),
                   tmp_path)
    assert "attacks.ig.itrations" in text and "Did you mean 'iterations'?" in text


def test_override_for_unknown_attack_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + "\n[attacks.igg]\niterations = 2\n"), tmp_path)
    assert "attacks.igg" in text and "Did you mean 'ig'?" in text


@pytest.mark.parametrize("old, new, key", [
    ("batch_size = [1]", 'batch_size = ["4"]', "factors.batch_size[0]"),
    ("[attacks.ig]\niterations = 3", '[attacks.ig]\niterations = "300"', "attacks.ig.iterations"),
    ("seed = [0]", "seed = [0.5]", "factors.seed[0]"),
    ("[attacks.ig]\niterations = 3", "[attacks.ig]\niterations = 3\nsigned = 1", "attacks.ig.signed"),
])
def test_wrong_type_is_refused(write_grid, cli, tmp_path, old, new, key):
    text = refused(cli, write_grid(MINIMAL_GRID.replace(old, new)), tmp_path)
    assert key in text and "expected" in text


def test_a_scalar_where_a_list_is_expected_shows_the_fix(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID.replace("seed = [0]", "seed = 0")), tmp_path)
    assert "factors.seed" in text and "seed = [0]" in text


def test_empty_list_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID.replace("seed = [0]", "seed = []")), tmp_path)
    assert "factors.seed" in text and "empty" in text


@pytest.mark.parametrize("old, new, key", [
    ("batch_size = [1]", "batch_size = [0]", "factors.batch_size[0]"),
    ("[attacks.ig]\niterations = 3", "[attacks.ig]\niterations = -5", "attacks.ig.iterations"),
    ("seed = [0]", "seed = [-1]", "factors.seed[0]"),
])
def test_out_of_range_number_is_refused(write_grid, cli, tmp_path, old, new, key):
    text = refused(cli, write_grid(MINIMAL_GRID.replace(old, new)), tmp_path)
    assert key in text and "out of range" in text


def test_zip_with_lists_of_different_length_is_refused(write_grid, cli, tmp_path):
    grid = MINIMAL_GRID.replace("batch_size = [1]", "batch_size = [1, 2, 4]") \
        .replace('name = "tiny"', 'name = "tiny"\nzip = [["labels", "batch_size"]]')
    text = refused(cli, write_grid(grid), tmp_path)
    assert "zip[0]" in text and "labels has 2" in text and "batch_size has 3" in text


def test_zip_naming_a_factor_not_in_the_grid_is_refused(write_grid, cli, tmp_path):
    grid = MINIMAL_GRID.replace('name = "tiny"', 'name = "tiny"\nzip = [["labels", "sede"]]')
    text = refused(cli, write_grid(grid), tmp_path)
    assert "zip[0]" in text and "Did you mean 'seed'?" in text


def test_exclude_naming_an_unknown_factor_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + '\n[[exclude]]\nattak = "ig"\n'), tmp_path)
    assert "exclude[0].attak" in text and "Did you mean 'attack'?" in text


def test_exclude_with_an_unknown_value_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + '\n[[exclude]]\nattack = "iig"\n'), tmp_path)
    assert "exclude[0].attack" in text and "'iig'" in text and "Did you mean 'ig'?" in text


def test_excluding_everything_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + '\n[[exclude]]\nseed = 0\n'), tmp_path)
    assert "no cells" in text


def test_values_that_resolve_to_the_same_cell_are_refused(write_grid, cli, tmp_path):
    grid = MINIMAL_GRID.replace('attack = ["idlg", { name = "ig", tv = 0.0 }]',
                                'attack = ["ig", { name = "ig", iterations = 3 }]')
    text = refused(cli, write_grid(grid), tmp_path)
    assert "factors.attack[1]" in text and "same configuration" in text


def test_missing_required_factor_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID.replace('model = ["lenet"]\n', "")), tmp_path)
    assert "missing required factor 'model'" in text


def test_extends_cycle_is_refused(write_grid, cli, tmp_path):
    write_grid('extends = "b.toml"\n', "a.toml")
    b = write_grid('extends = "a.toml"\n' + MINIMAL_GRID, "b.toml")
    text = refused(cli, b, tmp_path)
    assert "extends" in text and "cycle" in text and "a.toml" in text


def test_extends_missing_file_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid('extends = "base.toml"\n' + MINIMAL_GRID), tmp_path)
    assert "extends" in text and "base.toml" in text and "does not exist" in text


def test_an_extends_chain_longer_than_the_limit_is_refused(write_grid, cli, tmp_path):
    from evalgrid.grid.toml_io import MAX_EXTENDS_DEPTH

    write_grid(MINIMAL_GRID, "g0.toml")
    for index in range(1, MAX_EXTENDS_DEPTH + 5):
        last = write_grid(f'extends = "g{index - 1}.toml"\n', f"g{index}.toml")
    text = refused(cli, last, tmp_path)
    assert "extends" in text and f"longer than {MAX_EXTENDS_DEPTH} files" in text and str(last) in text


def test_an_extends_base_that_is_a_directory_says_so(write_grid, cli, tmp_path):
    (tmp_path / "base.toml").mkdir()
    text = refused(cli, write_grid('extends = "base.toml"\n' + MINIMAL_GRID), tmp_path)
    assert "base.toml' is a directory, not a file" in text


def test_a_grid_whose_arrays_nest_too_deeply_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + "deep = " + "[" * 5000 + "]" * 5000 + "\n"), tmp_path)
    assert "nested too deeply" in text


@pytest.mark.parametrize("key, value", [("name", '"tiny\\u001b[2J"'), ("description", '"a\\u0007b"')])
def test_control_characters_in_the_name_or_description_are_refused_and_escaped(write_grid, cli, tmp_path, key, value):
    grid = MINIMAL_GRID.replace('name = "tiny"', f'name = "tiny"\n{key} = {value}' if key == "description"
                                else f"name = {value}")
    text = refused(cli, write_grid(grid), tmp_path)
    assert key in text and "control characters" in text and "\x1b" not in text and "\x07" not in text


@pytest.mark.parametrize("change, expected", [
    ('batch_size = [1000000000000]', "factors.batch_size[0]: 1000000000000 is out of range: must be <= 100,000"),
    ('batch_size = [5000]', "factors.batch_size: 5000 needs 5000 distinct images, but dataset digits has 1437"),
    ('stage = [{ name = "fedavg", clients = 2000 }]', "factors.stage: fedavg(clients=2000) on dataset digits: 2000 "
                                                      "clients cannot share a training split of 1437 samples"),
    ('stage = [{ name = "fedavg", clients = 100, samples_per_client = 100 }]',
     "100 clients × 100 samples need 10000 samples, but the training split has 1437"),
    ('stage = [{ name = "fedavg", clients_per_round = 7 }]', "factors.stage: stage 'fedavg': clients_per_round = 7"),
    ('resolution = [100000]', "factors.resolution[0]: 100000 is out of range: must be <= 4,096"),
    ('trials = [1000000000000]', "factors.trials[0]: 1000000000000 is out of range: must be <= 1,000"),
    ('model = [{ name = "lenet", init_range = 1e308 }]', "init_range: 1e+308 is out of range"),
    ('model = [{ name = "convnet", width = 1000000000000 }]', "convnet(width=1000000000000) cannot be built"),
    ('model = [{ name = "convnet", width = 100000 }]', "more than evalgrid's limit of 4,000,000,000"),
    ('model = [{ name = "vit", mlp_dim = 9223372036854775807 }]', "cannot be built"),
])
def test_sizes_that_would_exhaust_memory_are_refused_at_plan(write_grid, cli, tmp_path, change, expected):
    key = change.split(" = ")[0]
    lines = [line for line in MINIMAL_GRID.splitlines() if not line.startswith(f"{key} = ")]
    at = lines.index("[factors]") + 1
    text = refused(cli, write_grid("\n".join([*lines[:at], change, *lines[at:]]) + "\n"), tmp_path)
    assert expected in text


def test_a_model_whose_weights_and_buffers_exceed_the_byte_limit_is_refused_at_plan(write_grid, cli, tmp_path,
                                                                                        monkeypatch):
    """DLG's LeNet on 32x32 grey digits: convolutions 1->12, 12->12, 12->12 (5x5, with biases), then
    12 x 8 x 8 -> 10 linear: 15,226 float32 parameters, 60,904 bytes; a limit of 60,000 bytes
    refuses it, counted on the meta device."""
    import evalgrid.launch.preflight

    parameters = (1 * 12 + 12 * 12 + 12 * 12) * 5 * 5 + 3 * 12 + 12 * 8 * 8 * 10 + 10
    assert parameters * 4 == 60_904
    monkeypatch.setattr(evalgrid.launch.preflight, "MAX_MODEL_BYTES", 60_000)
    text = refused(cli, write_grid(MINIMAL_GRID), tmp_path)
    assert f"lenet has {parameters:,} parameters (0.0 GiB" in text and "4,000,000,000 parameters and 0 GiB" in text
    monkeypatch.setattr(evalgrid.launch.preflight, "MAX_MODEL_BYTES", 60_904)
    assert cli("plan", write_grid(MINIMAL_GRID)).exit_code == 0


@pytest.mark.parametrize("where", ["extends", "data root", "checkpoint"])
def test_a_path_too_long_for_the_file_system_is_one_paragraph_naming_the_grid_and_key(write_grid, cli, tmp_path,
                                                                                      where):
    long_name = "y" * 5000  # Linux refuses names over 255 bytes with ENAMETOOLONG, from any call that looks
    text = {"extends": f'extends = "{long_name}"\n{MINIMAL_GRID}',
            "data root": MINIMAL_GRID.replace('["digits"]', '["cifar10"]') + f'\n[data]\nroot = "{long_name}"\n',
            "checkpoint": MINIMAL_GRID.replace('model = ["lenet"]', f'model = ["lenet"]\ninit = [{{ name = '
                                                                   f'"checkpoint", path = "{long_name}" }}]')}[where]
    message = refused(cli, write_grid(text), tmp_path)
    key = {"extends": "extends", "data root": "factors.dataset", "checkpoint": "factors.init"}[where]
    assert f": {key}: " in message and "too long" in message


def test_an_output_directory_path_too_long_is_one_paragraph(write_grid, cli, tmp_path):
    out = tmp_path / ("y" * 5000)
    for args in (["run", write_grid(MINIMAL_GRID), "--out", out], ["status", out], ["collect", out]):
        result = cli(*args)
        assert result.exit_code == 2 and result.output.startswith("error: ") and "too long" in result.output
        assert "Traceback" not in result.output and result.output.strip().count("\n") == 0


def test_unknown_executor_is_refused(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + '\n[run]\nexecutor = "lokal"\n'), tmp_path)
    assert "run.executor" in text and "Did you mean 'local'?" in text


def test_an_unknown_speedup_in_the_grid_is_refused_naming_the_file_and_key(write_grid, cli, tmp_path):
    grid = write_grid(MINIMAL_GRID + '\n[run]\nspeedups = "tf32, bf17"\n')
    text = refused(cli, grid, tmp_path)
    assert f"{grid}: run.speedups: unknown speedup 'bf17'. Did you mean 'bf16'?" in text


def test_unknown_slurm_option_lists_the_valid_names(write_grid, cli, tmp_path):
    text = refused(cli, write_grid(MINIMAL_GRID + '\n[slurm]\npartion = "gpu"\n'), tmp_path)
    assert "slurm.partion" in text and "Did you mean 'partition'?" in text and "gpus_per_task" in text


def test_error_in_a_base_file_names_the_base_file(write_grid, cli, tmp_path):
    write_grid(MINIMAL_GRID.replace('model = ["lenet"]', 'model = ["lenex"]'), "base.toml")
    child = write_grid('extends = "base.toml"\nname = "child"\n', "child.toml")
    out = tmp_path / "out"
    result = cli("run", child, "--out", out)
    assert result.exit_code == 2 and "base.toml: factors.model[0]" in result.output


def test_plan_refuses_the_same_way(write_grid, cli):
    result = cli("plan", write_grid(MINIMAL_GRID.replace("seed = [0]", "seed = [-1]")))
    assert result.exit_code == 2 and "factors.seed[0]" in result.output and "Traceback" not in result.output


def test_missing_grid_file_is_a_usage_error(cli, tmp_path):
    result = cli("plan", tmp_path / "nope.toml")
    assert result.exit_code == 2 and "nope.toml" in result.output


def test_cuda_without_a_gpu_is_refused_before_running(write_grid, cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    result = cli("run", write_grid(MINIMAL_GRID), "--out", out, "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU" in result.output and not out.exists()


def test_a_grid_of_too_many_cells_is_refused_before_any_cell_is_made(write_grid, cli, tmp_path):
    seeds = ", ".join(str(seed) for seed in range(1000))
    grid = write_grid(MINIMAL_GRID.replace("seed = [0]", f"seed = [{seeds}]").replace(
        'batch_size = [1]', "batch_size = [" + ", ".join(str(b) for b in range(1, 1001)) + "]"))
    text = refused(cli, grid, tmp_path)  # 2 attacks x 1,000 batch sizes x 2 label rules x 1,000 seeds
    assert "factors: the factor lists give 4,000,000 cells" in text and "--max-cells 4000000" in text
    assert cli("plan", grid, "--max-cells", 10).exit_code == 2
    small = write_grid(MINIMAL_GRID, "small.toml")
    assert cli("plan", small, "--max-cells", 4).exit_code == 0
    assert cli("plan", small, "--max-cells", 3).exit_code == 2
