"""analysis/README.md's pandas answers run as written, on a real tiny run that has every column
they read (defenses with defended accuracy, FedAvg rounds, trials with LPIPS, BRR and WSRR).

LPIPS reads AlexNet from the torch cache: the test writes torchvision's AlexNet with random
weights under the real file name (nothing is downloaded), so the numbers are not LPIPS's, but
every code path and column is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "analysis" / "README.md"

GRID = """
name = "analysis-readme"
metrics = ["psnr", "lpips", "brr", "wsrr", "accuracy", "defended_accuracy"]

[factors]
dataset = [{ name = "digits", resolution = 32 }]
model = [{ name = "convnet", width = 4 }]
stage = [{ name = "fedavg", round = 1 }, { name = "fedavg", round = 2 }]
defense = ["none", { name = "gaussian", sigma = 0.01 }]
attack = ["ig"]
batch_size = [2]
labels = ["known"]
trials = [2]
seed = [0]

[stages.fedavg]
clients = 2
clients_per_round = 2
local_epochs = 1
samples_per_client = 8
batch_size = 4
lr = 0.1
test_samples = 50

[attacks.ig]
iterations = 4

[run]
executor = "debug"
threads_per_worker = 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    import torchvision

    from evalgrid.cli import main

    root = tmp_path_factory.mktemp("analysis")
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet().state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
    (root / "grid.toml").write_text(GRID)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(root / "torch"))
        result = CliRunner().invoke(main, ["run", str(root / "grid.toml"), "--out", str(root / "run")],
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root / "run"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_block(code: str, namespace: dict) -> object:
    """Execute a block; return the value of its last line when that is an expression."""
    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "analysis/README.md", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "analysis/README.md", "eval"), namespace) if last else None


def test_every_answer_in_the_readme_runs_and_gives_a_table(run):
    blocks = python_blocks()
    assert len(blocks) >= 4
    namespace: dict = {}
    for code in blocks:
        code = re.sub(r'"runs/sok-[\w-]+"', repr(str(run)), code)
        answer = run_block(code, namespace)
        assert isinstance(answer, (pd.DataFrame, pd.Series)), f"no table from:\n{code}"
        assert not answer.empty or "looks_safe" in code, f"an empty answer from:\n{code}"


def test_the_defense_answer_compares_with_the_undefended_accuracy(run):
    namespace: dict = {}
    code = re.sub(r'"runs/sok-[\w-]+"', repr(str(run)), python_blocks()[0])
    run_block(code, namespace)
    per_defense = namespace["per_defense"]
    assert per_defense.loc["none", "accuracy_drop_points"] == 0
    assert set(per_defense.index) == {"none", "gaussian(sigma=0.01)"}
