"""The catalogue: each component declared once, read without torch, its implementation
imported when a cell runs; the result schema, metric options in ids, compatibility checks and
`evalgrid components` all follow the entries."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pyarrow as pa
import pytest

from evalgrid.catalogue import (ATTACKS, LABEL_RULES, METRICS, REGISTRIES, STAGES, AttackEntry, MetricEntry,
                                Origin, Ref, ref)
from evalgrid.catalogue.plugins import PluginError, _register
from evalgrid.catalogue.registry import Registry

READ_EVERYTHING = """
import sys, dataclasses, typing
from evalgrid.catalogue import REGISTRIES
from evalgrid.grid.factors import FACTORS
from evalgrid.store.results import result_schema
for registry in REGISTRIES.values():
    for name in registry:
        entry = registry[name]
        typing.get_type_hints(entry.options); dataclasses.fields(entry.options); entry.options()
result_schema()
print(sum(len(r) for r in REGISTRIES.values()), "torch" in sys.modules)
"""


def test_reading_every_entry_and_the_result_schema_imports_no_torch():
    done = subprocess.run([sys.executable, "-c", READ_EVERYTHING], capture_output=True, text=True, timeout=120)
    count, torch_imported = done.stdout.split()
    assert int(count) > 40 and torch_imported == "False", done.stderr[-2000:]


def test_every_implementation_an_entry_names_can_be_imported():
    for registry in REGISTRIES.values():
        for name in registry:
            entry = registry[name]
            for field in dataclasses.fields(entry):
                value = getattr(entry, field.name)
                if isinstance(value, Ref):
                    assert callable(value.resolve()), f"{entry.kind} {name}: {field.name} = {value!r}"


def test_every_built_in_entry_names_evalgrid_as_its_origin():
    import evalgrid

    for registry in REGISTRIES.values():
        assert {str(registry[name].origin) for name in registry} == {f"evalgrid {evalgrid.__version__}"}


def test_a_ref_imports_its_target_when_called_and_binds_its_keywords():
    assert Ref("math:pow")(2, 10) == 1024
    assert ref("builtins:int", base=16)("ff") == 255
    with pytest.raises(ValueError, match="package.module:attribute"):
        Ref("math.pow").resolve()


def test_an_entry_whose_options_are_not_a_frozen_dataclass_is_refused():
    @dataclasses.dataclass
    class Mutable:
        steps: int = 1

    with pytest.raises(TypeError, match="frozen dataclass"):
        AttackEntry(name="x", summary="", build="math:pow", options=Mutable)


def test_a_metric_with_a_column_type_the_store_cannot_hold_is_refused():
    with pytest.raises(TypeError, match="column_type"):
        MetricEntry(name="x", summary="", build="math:pow", column_type="complex128")


def test_a_metric_entry_gives_its_result_columns(monkeypatch):
    from evalgrid.store import results

    entry = MetricEntry(name="sharpness", summary="test", build="math:pow", per_sample=True)
    monkeypatch.setitem(METRICS._entries, "sharpness", entry)
    results.result_schema.cache_clear()
    try:
        schema = results.result_schema()
        assert schema.field("sharpness").type == pa.float64()
        assert schema.field("sharpness_per_sample").type == pa.list_(pa.list_(pa.float64()))
        assert "sharpness" in results.metric_columns() and "sharpness" in results.per_sample_metrics()
        assert results.empty_row()["sharpness"] != results.empty_row()["sharpness"]  # NaN until measured
    finally:
        monkeypatch.undo()
        results.result_schema.cache_clear()
    assert "sharpness" not in results.result_schema().names


def test_a_metric_option_enters_the_ids_of_exactly_the_metrics_whose_entry_reads_it(write_grid):
    from evalgrid.grid import load_grid

    grid = """
name = "reads"
metrics = [{metrics}]
[metric_options]
leak_psnr = {threshold}
[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["idlg"]
"""
    readers = [name for name in METRICS if "leak_psnr" in METRICS[name].reads]
    assert readers == ["brr", "wsrr"]
    for metrics, changes in (('"psnr"', False), ('"wsrr"', True), ('"brr", "ssim"', True), ('"igsa"', False)):
        ids = [load_grid(write_grid(grid.format(metrics=metrics, threshold=value), f"{value}.toml")).cells[0].cell_id
               for value in (18.0, 25.0)]
        assert (ids[0] != ids[1]) == changes, metrics


def test_an_attack_that_needs_shared_bn_statistics_is_refused_without_them_whatever_its_name(write_grid, monkeypatch):
    from evalgrid.errors import GridError
    from evalgrid.grid import load_grid

    grid = write_grid("""
name = "bn"
metrics = ["psnr"]
[factors]
dataset = ["digits"]
model = ["convnet"]
attack = ["idlg"]
""")
    load_grid(grid)
    monkeypatch.setitem(ATTACKS._entries, "idlg", dataclasses.replace(ATTACKS["idlg"], needs_shared_bn_statistics=True))
    with pytest.raises(GridError, match="attack 'idlg' needs the BatchNorm statistics"):
        load_grid(grid)


def test_a_metric_that_trains_with_the_defense_is_refused_at_a_stage_that_does_not_train(write_grid):
    from evalgrid.errors import GridError
    from evalgrid.grid import load_grid

    assert [name for name in STAGES if STAGES[name].trains] == ["fedavg"]
    grid = write_grid("""
name = "defended"
metrics = ["psnr", "defended_accuracy"]
[factors]
dataset = ["digits"]
model = ["lenet"]
attack = ["idlg"]
""")
    with pytest.raises(GridError, match="choose one of 'fedavg'"):
        load_grid(grid)


def test_label_inference_accepts_every_rule_of_the_catalogue_and_names_them_when_wrong(write_grid, monkeypatch):
    from evalgrid.errors import GridError
    from evalgrid.grid import load_grid

    grid = """
name = "rules"
[factors]
dataset = ["digits"]
model = ["lenet"]
attack = [{{ name = "ig", label_inference = "{rule}" }}]
"""
    with pytest.raises(GridError, match="Valid choices: fedleak, idlg, yin"):
        load_grid(write_grid(grid.format(rule="mine"), "a.toml"))
    monkeypatch.setitem(LABEL_RULES._entries, "mine", dataclasses.replace(LABEL_RULES["yin"], name="mine"))
    assert load_grid(write_grid(grid.format(rule="mine"), "b.toml")).cells[0].attack.options.label_inference == "mine"


def test_a_second_entry_of_a_name_is_refused_naming_the_package_that_declared_the_first():
    attacks: Registry = Registry("attack")
    registries = {AttackEntry: attacks}
    first = AttackEntry(name="mine", summary="", build="math:pow")
    _register([first], Origin("pkg-a", "1.0"), registries, where="package pkg-a 1.0")
    with pytest.raises(PluginError, match="declares attack 'mine', which pkg-a 1.0 already declares"):
        _register([first], Origin("pkg-b", "2.0"), registries, where="package pkg-b 2.0")


def test_something_that_is_not_an_entry_is_refused_with_the_kinds_of_entries():
    with pytest.raises(PluginError, match="not a catalogue entry: use one of AttackEntry"):
        _register(["ig"], Origin("pkg", "1"), {AttackEntry: Registry("attack")}, where="package pkg 1")


def test_components_lists_each_component_with_its_origin_and_the_metrics_with_their_facts(cli):
    import evalgrid

    attacks = cli("components", "attack")
    assert attacks.exit_code == 0, attacks.output
    assert f"  fedleak: FedLeak (Fan et al. 2025)" in attacks.output
    assert f"[evalgrid {evalgrid.__version__}]" in attacks.output
    assert "label_inference = 'fedleak'  (one of 'idlg', 'yin', 'fedleak')" in attacks.output
    metrics = cli("components", "metrics")
    assert "  brr: batch reconstruction rate" in metrics.output
    assert "leakage; higher is better; reads [metric_options] matching, leak_psnr, leak_lpips" in metrics.output
    wrong = cli("components", "metric")
    assert wrong.exit_code == 2 and "did you mean 'metrics'" in wrong.output.lower()
