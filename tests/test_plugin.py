"""The example plugin (examples/plugin) installed as a package: its components are listed, named by
a grid and run by the real CLI locally, in the debug executor and on Slurm; a plugin that fails to
import, or reuses a built-in's name, stops `plan` with one paragraph naming the package.

Every package is installed with ``pip install --no-deps --no-build-isolation --no-index --target
<tmp>`` (offline, from a copy of its folder so that the build leaves nothing in the tree) and found
through ``PYTHONPATH=<tmp>`` by the CLI's subprocesses; the shared venv is never changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import evalgrid
from evalgrid.executors.slurm.ledger import read_submissions
from evalgrid.store.layout import OutputDir
from test_slurm_cluster import cluster  # noqa: F401 - the fixture: a running Slurm, or a skip saying why

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugin"
ORIGIN = "evalgrid-example-plugin 0.1.0"

GRID = """
name = "plugin"
metrics = ["psnr"]

[factors]
dataset = ["digits"]
model = ["mlp"]
attack = ["linear_leak"]
defense = ["none", "laplace"]
batch_size = [1]
seed = [0, 1]
{extra}
"""
CELLS = 4


def install(source: Path, target: Path) -> Path:
    """``source`` (a copy of it) installed into ``target`` without network, dependencies or build isolation."""
    build = target.parent / f"{target.name}-source"
    shutil.copytree(source, build, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "--quiet", "--target", str(target), str(build)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip install {source} failed:\n{done.stdout}\n{done.stderr}"
    return target


def environment(site: Path) -> dict[str, str]:
    """The caller's environment with ``site`` first on PYTHONPATH (sacct asked at most every second)."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "EVALGRID_SACCT_INTERVAL_S": "1"}


def evalgrid_cli(env: dict[str, str], *args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalgrid", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def load_rows(env: dict[str, str], out: Path) -> list[dict]:
    """``evalgrid.load(out)``'s rows, loaded in a subprocess that sees the plugin."""
    code = ("import json, sys, evalgrid\n"
            "frame = evalgrid.load(sys.argv[1])\n"
            "columns = ['cell_id', 'defense', 'seed', 'status', 'psnr', 'plugins', 'attack_iterations', 'error_message']\n"
            "print(json.dumps([{c: (str(v) if c == 'defense' else v) for c, v in zip(columns, row)} "
            "for row in frame[columns].astype(object).itertuples(index=False)]))\n")
    loaded = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert loaded.returncode == 0, loaded.stderr
    return json.loads(loaded.stdout)


def check_results(rows: list[dict]) -> dict[str, float]:
    """Every cell done once; the analytic attack is exact for B = 1 and hurt by Laplace noise."""
    assert len(rows) == CELLS and len({r["cell_id"] for r in rows}) == CELLS
    assert all(r["status"] == "done" for r in rows), [r["error_message"] for r in rows]
    assert all(ORIGIN in r["plugins"] for r in rows)
    assert all(r["attack_iterations"] == 1 for r in rows)
    clean = [r["psnr"] for r in rows if r["defense"] == "none"]
    noisy = [r["psnr"] for r in rows if r["defense"] == "laplace"]
    assert len(clean) == len(noisy) == 2
    assert min(clean) > 60, clean
    assert max(noisy) < min(clean), (clean, noisy)
    return {r["cell_id"]: r["psnr"] for r in rows}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example plugin, installed into a folder of its own."""
    return install(PLUGIN, tmp_path_factory.mktemp("plugin") / "site")


@pytest.fixture
def grid(tmp_path) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(GRID.format(extra="\n[run]\nexecutor = \"local\"\nworkers = 2\n"))
    return path


def test_components_lists_the_plugin_with_its_origin_and_options(site):
    env = environment(site)
    attacks = evalgrid_cli(env, "components", "attack", timeout=120)
    assert attacks.returncode == 0, attacks.stderr
    [line] = [line for line in attacks.stdout.splitlines() if line.startswith("  linear_leak:")]
    assert line.endswith(f"[{ORIGIN}]")
    assert "label_inference = 'idlg'" in attacks.stdout
    assert "  ig:" in attacks.stdout and "[evalgrid " in attacks.stdout  # the built-ins are still there
    defenses = evalgrid_cli(env, "components", "defense", timeout=120).stdout
    assert "  laplace: " in defenses and f"[{ORIGIN}]" in defenses and "scale = 0.001" in defenses
    models = evalgrid_cli(env, "components", "model", timeout=120).stdout
    assert "  mlp: " in models and "hidden = 256" in models
    without = evalgrid_cli({k: v for k, v in env.items() if k != "PYTHONPATH"}, "components", "attack", timeout=120)
    assert without.returncode == 0 and "linear_leak" not in without.stdout


def test_the_plugin_attack_refuses_a_model_it_cannot_leak_through_before_anything_runs(site, tmp_path):
    env = environment(site)
    grid = tmp_path / "lenet.toml"
    grid.write_text(GRID.format(extra="").replace('model = ["mlp"]', 'model = ["mlp", "lenet"]'))
    assert evalgrid_cli(env, "plan", grid, timeout=120).returncode == 0  # plain plan imports no implementation
    checked = evalgrid_cli(env, "plan", grid, "--check", timeout=300)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert "factors.attack: linear_leak needs a model whose first trainable layer is an nn.Linear" in checked.stderr
    refused = evalgrid_cli(env, "run", grid, "--out", tmp_path / "out", timeout=300)
    assert refused.returncode == 2 and not (tmp_path / "out").exists(), refused.stderr


def test_a_misspelt_implementation_stops_run_naming_the_package(tmp_path):
    broken = tmp_path / "misspelt"
    shutil.copytree(PLUGIN, broken, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    entries = broken / "src" / "evalgrid_example_plugin" / "entries.py"
    entries.write_text(entries.read_text().replace("evalgrid_example_plugin.defense:build",
                                                   "evalgrid_example_plugin.defense:buildd"))
    env = environment(install(broken, tmp_path / "site"))
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(extra=""))
    done = evalgrid_cli(env, "run", grid, "--out", tmp_path / "out", timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert (f"defense 'laplace' (from {ORIGIN}) names build = 'evalgrid_example_plugin.defense:buildd', which "
            f"cannot be imported: AttributeError") in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_grid_of_plugin_components_runs_locally_and_in_the_debug_executor(site, grid, tmp_path):
    env = environment(site)
    plan = evalgrid_cli(env, "plan", grid)
    assert plan.returncode == 0, plan.stderr
    assert f"{CELLS} cells" in plan.stdout and "linear_leak" in plan.stdout and "laplace" in plan.stdout

    out = tmp_path / "out"
    ran = evalgrid_cli(env, "run", grid, "--out", out)
    assert ran.returncode == 0, ran.stderr
    status = evalgrid_cli(env, "status", out)
    assert status.returncode == 0 and "done     4" in status.stdout, status.stdout
    collected = evalgrid_cli(env, "collect", out)
    assert collected.returncode == 0 and (out / "results.parquet").is_file(), collected.stderr
    psnr = check_results(load_rows(env, out))
    report = evalgrid_cli(env, "report", out)
    assert report.returncode == 0, report.stderr
    assert "linear_leak" in (out / "report.html").read_text()

    # the same cells in-process: the same ids, the same numbers
    debug = tmp_path / "debug"
    assert evalgrid_cli(env, "run", grid, "--out", debug, "--executor", "debug").returncode == 0
    assert check_results(load_rows(env, debug)) == psnr


@pytest.mark.slow
def test_a_plugin_grid_runs_on_slurm_and_its_jobs_find_the_plugin(cluster, site, tmp_path):  # noqa: F811
    env = environment(site)
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(extra='\n[slurm]\nprofile = "local-test"\ncells_per_job = 2\n'))
    out = tmp_path / "out"
    waited = evalgrid_cli(env, "run", grid, "--out", out, "--executor", "slurm", "--wait")
    assert waited.returncode == 0, waited.stderr
    check_results(load_rows(env, out))
    [submission] = read_submissions(OutputDir(out))
    assert [job.kind for job in submission.jobs] == ["cells"] and len(submission.jobs[0].tasks) == 2
    # sbatch passes the submitting shell's environment on (--export=ALL, its default): PYTHONPATH included
    shown = tmp_path / "env.txt"
    echoed = subprocess.run(["sbatch", "--wait", "--output", str(shown), "--wrap", 'echo "PYTHONPATH=$PYTHONPATH"'],
                            capture_output=True, text=True, timeout=300, env=env)
    assert echoed.returncode == 0, echoed.stderr
    assert f"PYTHONPATH={env['PYTHONPATH']}" in shown.read_text()


THROWAWAY = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.0.1"

        [project.entry-points."evalgrid.components"]
        {module} = "{module}.entries:ENTRIES"

        [tool.setuptools]
        packages = ["{module}"]
        """,
    "{module}/__init__.py": "",
}


def throwaway(tmp_path: Path, name: str, entries: str) -> Path:
    """A package ``name`` whose entries module is ``entries``, installed; its folder for PYTHONPATH."""
    module = name.replace("-", "_")
    source = tmp_path / f"{module}-src"
    for relative, text in {**THROWAWAY, "{module}/entries.py": entries}.items():
        path = source / relative.format(module=module)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("{name}", name).replace("{module}", module))
    return install(source, tmp_path / f"{module}-site")


@pytest.fixture
def builtin_grid(tmp_path) -> Path:
    """A grid of built-in components only: what stops it can only be the plugin."""
    path = tmp_path / "builtin.toml"
    path.write_text(GRID.format(extra="").replace('"mlp"', '"lenet"').replace('"linear_leak"', '"idlg"')
                    .replace('"laplace"', '"gaussian"'))
    return path


def one_paragraph(stderr: str) -> str:
    assert "Traceback" not in stderr
    text = stderr.strip()
    assert text.startswith("error: ") and "\n\n" not in text, text
    return text


def test_a_plugin_that_fails_to_import_stops_plan_with_one_paragraph_naming_it(tmp_path, builtin_grid):
    site = throwaway(tmp_path, "evalgrid-broken-plugin",
                     'raise ImportError("evalgrid_broken_plugin needs a library that is not installed")\n')
    planned = evalgrid_cli(environment(site), "plan", builtin_grid, timeout=120)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    text = one_paragraph(planned.stderr)
    assert "evalgrid-broken-plugin 0.0.1" in text and "ImportError" in text and "not installed" in text
    assert not planned.stdout


def test_a_plugin_that_reuses_a_builtin_name_stops_plan_naming_both_packages(tmp_path, builtin_grid):
    site = throwaway(tmp_path, "evalgrid-clashing-plugin", textwrap.dedent("""
        from evalgrid.catalogue import AttackEntry

        ENTRIES = [AttackEntry(name="ig", summary="another ig", build="evalgrid_clashing_plugin.entries:build")]
        """))
    planned = evalgrid_cli(environment(site), "plan", builtin_grid, timeout=120)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    text = one_paragraph(planned.stderr)
    assert "evalgrid-clashing-plugin 0.0.1" in text and f"evalgrid {evalgrid.__version__}" in text and "'ig'" in text
