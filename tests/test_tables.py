"""`evalgrid table`: a paper's table regenerated from a real run, published values beside the
measured ones, with the difference and a computed trend verdict.

One tiny real run (IG against 1, 2 and 4 full-batch FedAvg steps on 16×16 digits, two seeds)
serves every test; the definitions and "published" CSVs are written per test in a temporary
analysis folder ($EVALGRID_ANALYSIS), so each test states the paper it compares with."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import evalgrid
from evalgrid.tables.compare import published_resolution
from evalgrid.tables.verdicts import Level, against_reference, monotone, ranking, spearman
from evalgrid.tables.definition import Trend

RUN_GRID = """
name = "steps-smoke"
metrics = ["psnr", "ssim"]

[factors]
dataset = [{ name = "digits", resolution = 16 }]
model = [{ name = "convnet", width = 4 }]
local_training = [{ name = "fedavg", local_steps = 1 }, { name = "fedavg", local_steps = 2 },
                  { name = "fedavg", local_steps = 4 }]
attack = ["ig"]
batch_size = [1]
labels = ["known"]
trials = [2]
seed = [0, 1]

[local_trainings.fedavg]
lr = 0.3
bn_mode = "eval"

[attacks.ig]
iterations = 20
tv = 0.0

[run]
executor = "debug"
threads_per_worker = 1
"""

PAPER_GRID = """
extends = "steps-smoke.toml"
name = "steps-paper"
"""


def invoke(*args):
    from evalgrid.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tables")
    (folder / "steps-smoke.toml").write_text(RUN_GRID)
    (folder / "steps-paper.toml").write_text(PAPER_GRID)
    result = invoke("run", folder / "steps-smoke.toml", "--out", folder / "run")
    assert result.exit_code == 0, result.output
    return folder / "run"


@pytest.fixture(scope="module")
def measured(run) -> pd.DataFrame:
    """PSNR per U: mean and std over the 2 seeds × 2 trials, computed here from the raw results."""
    frame = evalgrid.load(run)
    frame["U"] = frame["local_steps"]
    samples = frame.explode("psnr_per_sample")
    samples["trial_psnr"] = samples["psnr_per_sample"].map(lambda trial: sum(trial) / len(trial))
    return samples.groupby("U")["trial_psnr"].agg(["mean", "std", "count"])


@pytest.fixture
def analysis(tmp_path, monkeypatch, run):
    """analysis(definition, csv=None) -> the table's name, in a fresh $EVALGRID_ANALYSIS."""
    root = tmp_path / "analysis"
    (root / "tables").mkdir(parents=True)
    monkeypatch.setenv("EVALGRID_ANALYSIS", str(root))
    grids = run.parent

    def write(definition: str, csv: str | None = None, name: str = "steps") -> str:
        text = textwrap.dedent(definition).replace("GRIDS", str(grids))
        if csv is not None:
            (root / "published.csv").write_text(textwrap.dedent(csv).lstrip())
            text = 'published = "../published.csv"\n' + text
        (root / "tables" / f"{name}.toml").write_text(text)
        return name

    return write


STEPS_TABLE = """
title = "Local steps (a test table)"
paper = "A paper, Table 1"
grid = "GRIDS/steps-paper.toml"
smoke = "GRIDS/steps-smoke.toml"
rows = ["dataset", "attack"]
columns = ["local_updates"]

[keys.dataset]
factor = "dataset"
stand_in = { digits = "cifar10" }

[keys.attack]
factor = "attack"
map = { ig = "O" }

[keys.local_updates]
column = "local_steps"

[values.{value}]
measured = "{value}"
{fallback}

[trend]
along = "local_updates"
"""


def steps_table(value: str = "psnr", fallback: str = "") -> str:
    return STEPS_TABLE.replace("{value}", value).replace("{fallback}", fallback)


def published_csv(value: str, numbers: dict[int, float]) -> str:
    lines = ["# the setting of the published table", f"dataset,attack,local_updates,{value}"]
    lines += [f"cifar10,O,{u},{v}" for u, v in numbers.items()]
    lines.append(f"cifar100,O,1,{numbers[1]}")  # a row the run does not measure
    return "\n".join(lines) + "\n"


def csv_table(name: str, run: Path) -> pd.DataFrame:
    result = invoke("table", name, run, "--format", "csv")
    assert result.exit_code == 0, result.output
    import io

    return pd.read_csv(io.StringIO(result.output))


def direction(measured: pd.DataFrame) -> int:
    """+1 when the run's PSNR rises with U (Spearman over U = 1, 2, 4), -1 when it falls."""
    rho = spearman([1.0, 2.0, 4.0], list(measured["mean"]))
    assert abs(rho) >= 0.5, f"the tiny run shows no direction (rho {rho}): pick another setting"
    return 1 if rho > 0 else -1


def test_each_cell_is_the_mean_and_std_over_seeds_and_trials_beside_the_published_value(analysis, run, measured):
    name = analysis(steps_table(), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    table = csv_table(name, run).set_index(["dataset", "local_updates"])
    for steps, stats in measured.iterrows():
        row = table.loc[("cifar10", steps)]
        assert row["measured_mean"] == pytest.approx(stats["mean"])
        assert row["measured_std"] == pytest.approx(stats["std"])
        assert row["samples"] == stats["count"] == 4  # 2 seeds × 2 trials
        assert row["difference"] == pytest.approx(stats["mean"] - {1: 20.0, 2: 15.0, 4: 10.0}[steps])


def test_published_rows_the_run_did_not_measure_stay_with_an_empty_measured_value(analysis, run):
    name = analysis(steps_table(), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    table = csv_table(name, run)
    unmeasured = table[table["dataset"] == "cifar100"]
    assert len(unmeasured) == 1 and math.isnan(unmeasured["measured_mean"].iloc[0])
    assert unmeasured["published"].iloc[0] == 20.0


def test_markdown_prints_the_papers_layout_with_the_difference(analysis, run, measured):
    name = analysis(steps_table(), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    text = invoke("table", name, run).output
    header = next(line for line in text.splitlines() if line.startswith("| dataset"))
    assert header.split(" | ")[:5] == ["| dataset", "attack", "local_updates 1", "local_updates 2"][:4] + \
        ["local_updates 4"]
    stand_ins = "| cifar10 (measured: digits) | O |"  # the paper's labels, then what the run measured
    row = next(line for line in text.splitlines() if line.startswith(stand_ins))
    mean_u1 = measured.loc[1, "mean"]
    assert f"[20.00, Δ {'+' if mean_u1 >= 20 else '−'}{abs(mean_u1 - 20):.2f}]" in row


@pytest.mark.parametrize("same_way", [True, False])
def test_the_trend_verdict_follows_the_measured_direction(analysis, run, measured, same_way):
    rising = direction(measured) > 0
    numbers = {1: 10.0, 2: 12.0, 4: 14.0} if rising == same_way else {1: 14.0, 2: 12.0, 4: 10.0}
    name = analysis(steps_table(), published_csv("psnr", numbers))
    table = csv_table(name, run)
    verdict = set(table[table["dataset"] == "cifar10"]["trend"])
    assert verdict == {"agrees" if same_way else "disagrees"}
    assert set(table[table["dataset"] == "cifar100"]["trend"]) == {"not measured"}


def test_a_psnr_stand_in_for_lpips_is_judged_by_the_direction_of_leakage(analysis, run, measured):
    """Published LPIPS rising means less leakage: it agrees with a measured PSNR that falls."""
    leaking_less = direction(measured) < 0
    numbers = {1: 0.02, 2: 0.10, 4: 0.20} if leaking_less else {1: 0.20, 2: 0.10, 4: 0.02}
    name = analysis(steps_table("lpips", 'fallback = "psnr"'), published_csv("lpips", numbers))
    table = csv_table(name, run)
    measured_rows = table[table["dataset"] == "cifar10"]
    assert set(measured_rows["measured_column"]) == {"psnr"}
    assert measured_rows["difference"].isna().all()  # PSNR minus LPIPS means nothing
    assert set(measured_rows["trend"]) == {"agrees"}
    text = invoke("table", name, run).output
    assert "The run has no lpips" in text and "Δ" not in text.split("The run has no lpips")[1]


def test_latex_escapes_and_uses_booktabs(analysis, run):
    name = analysis(steps_table(), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    text = invoke("table", name, run, "--format", "latex").output
    assert r"\begin{tabular}{llcccc}" in text and r"\toprule" in text
    assert r"$\pm$" in text and r"$\Delta$" in text and "local\\_updates 1" in text


def test_out_writes_the_table_to_a_file(analysis, run, tmp_path):
    name = analysis(steps_table(), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    result = invoke("table", name, run, "--format", "csv", "--out", tmp_path / "t.csv")
    assert result.exit_code == 0
    assert pd.read_csv(tmp_path / "t.csv")["measure"].eq("psnr").all()


def test_a_figure_without_published_values_is_judged_against_the_papers_stated_claim(analysis, run, measured):
    falls = direction(measured) < 0
    definition = steps_table().replace("[trend]\n", f'[trend]\nexpect = "{"decreasing" if falls else "increasing"}"\n'
                                                   f'expect_source = "Sec. 5, the text"\n')
    name = analysis(definition)
    table = csv_table(name, run)
    assert set(table["trend"]) == {"agrees"} and table["published"].isna().all()


def test_list_names_every_table_with_its_grid(analysis, run):
    analysis(steps_table(), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    result = invoke("table", "--list")
    assert result.exit_code == 0
    assert "steps: Local steps (a test table)" in result.output and "steps-paper.toml" in result.output


# user mistakes ----------------------------------------------------------------------------------

def test_an_unknown_table_names_the_choices(analysis, run):
    analysis(steps_table(), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    result = invoke("table", "stpes", run)
    assert result.exit_code == 2
    assert "unknown table 'stpes'. Did you mean 'steps'? Valid choices: steps." in result.output


def test_a_run_of_another_grid_is_refused(analysis, run, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text('name = "other"\n[factors]\ndataset = ["digits"]\nmodel = ["lenet"]\nattack = ["ig"]\n')
    name = analysis(steps_table().replace("GRIDS/steps-paper.toml", str(other)).replace("GRIDS/steps-smoke.toml",
                                                                                      str(other)),
                    published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    result = invoke("table", name, run)
    assert result.exit_code == 2 and "holds grid 'steps-smoke'" in result.output and "'other'" in result.output


@pytest.mark.parametrize("change, key, hint", [
    (("[keys.attack]\nfactor = \"attack\"", "[keys.attack]\nfactor = \"atack\""), "keys.attack.factor",
     "Did you mean 'attack'?"),
    (("column = \"local_steps\"", "column = \"local_step\""), "keys.local_updates.column", "Did you mean 'local_steps'?"),
    (("[trend]\nalong = \"local_updates\"", "[trend]\nalong = \"local_updates\"\nkind = \"monotonic\""),
     "trend.kind", "Did you mean 'monotone'?"),
    (("rows = [", "colour = 1\nrows = ["), "colour", "Valid choices:"),
    (('map = { ig = "O" }', 'map = { ig = "O" }\nstand_in = { ig = "L" }'), "keys.attack.stand_in",
     "either another name of the paper's (map) or a stand-in"),
])
def test_a_bad_definition_names_the_file_the_key_and_the_choices(analysis, run, change, key, hint):
    name = analysis(steps_table().replace(*change), published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    result = invoke("table", name, run)
    assert result.exit_code == 2
    assert f"{name}.toml: {key}:" in result.output and hint in result.output
    assert "Traceback" not in result.output


# the verdict rules ------------------------------------------------------------------------------

def levels(*triples) -> list[Level]:
    return [Level(text, published, measured) for text, published, measured in triples]


def test_monotone_compares_each_step_with_the_published_step():
    trend = Trend("psnr", "steps", "monotone")
    assert monotone(trend, levels(("1", 3.0, 9.0), ("2", 2.0, 8.0), ("4", 1.0, 7.0)), 1)[2] == "agrees"
    assert monotone(trend, levels(("1", 3.0, 7.0), ("2", 2.0, 8.0), ("4", 1.0, 9.0)), 1)[2] == "disagrees"
    assert monotone(trend, levels(("1", 3.0, 7.0), ("2", 2.0, 9.0), ("4", 1.0, 7.0)), 1)[2] == \
        "mixed (1 of 2 steps agree)"  # 1 to 2: paper falls, measured rises; 2 to 4: both fall
    assert monotone(trend, levels(("1", 3.0, 7.0), ("2", 2.0, math.nan)), 1)[2] == "not measured"


def test_monotone_steps_follow_the_levels_values_not_the_papers_row_order():
    trend = Trend("psnr", "steps", "monotone")
    shuffled = levels(("4", 1.0, 7.0), ("1", 3.0, 9.0), ("2", 2.0, 8.0))
    paper, measured, outcome = monotone(trend, shuffled, 1)
    assert outcome == "agrees"
    assert paper == "1 to 2 falls; 2 to 4 falls" and measured == "1 to 2 falls; 2 to 4 falls"


def test_monotone_expects_the_published_series_dip_where_it_dips():
    """SoK Table 2, CIFAR-10, GIA-O, WST (LPIPS): 0.1117, 0.1456, 0.1314 at 4, 6, 8 mini-batches:
    up, then down. A measured series with the same dip agrees; one that keeps rising agrees on
    the first step only."""
    trend = Trend("lpips", "minibatches", "monotone")
    published = {"4": 0.1117, "6": 0.1456, "8": 0.1314}
    with_dip = levels(*((k, v, m) for (k, v), m in zip(published.items(), (0.11, 0.16, 0.12))))
    rising = levels(*((k, v, m) for (k, v), m in zip(published.items(), (0.11, 0.13, 0.15))))
    assert monotone(trend, with_dip, 1)[:2] == ("4 to 6 rises; 6 to 8 falls", "4 to 6 rises; 6 to 8 falls")
    assert monotone(trend, with_dip, 1)[2] == "agrees"
    assert monotone(trend, rising, 1)[2] == "mixed (1 of 2 steps agree)"


def test_a_published_tie_or_gap_is_not_judged():
    trend = Trend("lpips", "minibatches", "monotone")
    paper, _, outcome = monotone(trend, levels(("1", 0.1, 0.2), ("2", 0.1, 0.3), ("3", 0.2, 0.1)), 1)
    assert outcome == "disagrees"  # 1 to 2 is a published tie: only 2 to 3 (rises, measured falls) counts
    assert paper.endswith("(1 not judged: published tie at the printed precision, or missing)")
    assert monotone(trend, levels(("1", 0.1, 0.2), ("2", 0.1, 0.3)), 1)[2] == "unclear"
    assert monotone(trend, levels(("1", 0.1, 0.2), ("2", math.nan, 0.3)), 1)[2] == "unclear"


def test_a_published_gap_of_one_printed_unit_is_a_tie():
    """SoK Table 4 prints LPIPS to 4 decimals: 'remove dropout' 0.0043 against 'none' 0.0044 may be
    equal before rounding ([0.00425, 0.00435) and [0.00435, 0.00445)), so it is not judged; 'kernel 4'
    (0.0012, 32 units below) is."""
    trend = Trend("lpips", "modification", "reference", reference="none")
    rows = [Level("none", 0.0044, 0.10, 1e-4), Level("remove_dropout", 0.0043, 0.10, 1e-4),
            Level("kernel_4", 0.0012, 0.20, 1e-4)]
    paper, _, outcome = against_reference(trend, rows, 1)
    assert outcome == "disagrees"  # kernel_4 only: published lower, measured higher
    assert paper.startswith("remove_dropout equal to none (a tie at the printed precision: not judged)")
    two_units = [Level("none", 0.0044, 0.10, 1e-4), Level("remove_dropout", 0.0042, 0.10, 1e-4)]
    assert against_reference(trend, two_units, 1)[2] == "disagrees"  # published lower, measured equal


@pytest.mark.parametrize("texts, unit", [
    (["0.0044", "0.0043", "0.15"], 1e-4), (["18", "9.5"], 0.1), (["12", "30"], 1.0), ([None, "0.5"], 0.1),
    (["nan", "—"], 0.0)])
def test_the_printed_rounding_unit_is_one_in_the_last_printed_decimal(texts, unit):
    assert published_resolution(pd.Series(texts, dtype=object)) == pytest.approx(unit)


def test_reference_compares_every_level_with_the_reference_level():
    trend = Trend("lpips", "modification", "reference", reference="none")
    rows = levels(("none", 0.004, 0.10), ("remove_bias", 0.03, 0.20), ("kernel_1", 0.15, 0.05))
    paper, measured, outcome = against_reference(trend, rows, 1)
    assert outcome == "mixed (1 of 2 levels agree)"
    assert paper == "remove_bias higher than none; kernel_1 higher than none"
    assert measured == "remove_bias higher than none; kernel_1 lower than none"


def test_a_stated_claim_leaves_its_unclaimed_levels_unjudged():
    # SoK Fig. 11: "defends" (LPIPS higher than none) for Q, S, P; clipping "has almost no effect".
    trend = Trend("lpips", "defense", "reference", reference="none", expect="higher", expect_source="Sec. 6",
                  unclaimed=("C bound 0.5",))
    nan = math.nan
    rows = levels(("none", nan, 0.10), ("Q 1-bit", nan, 0.30), ("C bound 0.5", nan, 0.10))
    paper, _, outcome = against_reference(trend, rows, 1)
    assert outcome == "agrees"  # Q judged (higher: agrees); C equal to none but not judged
    assert paper.endswith("not claimed, not judged: C bound 0.5")
    claimed = Trend("lpips", "defense", "reference", reference="none", expect="higher", expect_source="Sec. 6")
    assert against_reference(claimed, rows, 1)[2] == "mixed (1 of 2 levels agree)"


def test_rank_compares_the_order_of_the_levels():
    trend = Trend("psnr", "attack", "rank")
    rows = levels(("idlg", 9.9, 8.0), ("ig", 10.3, 9.0), ("gi", 11.3, 9.5), ("fedleak", 23.1, 14.0))
    assert ranking(trend, rows, 1)[2] == "agrees"
    assert ranking(trend, rows, -1)[2] == "disagrees"
    swapped = levels(("idlg", 9.9, 9.2), ("ig", 10.3, 9.0), ("gi", 11.3, 9.5), ("fedleak", 23.1, 14.0))
    assert ranking(trend, swapped, 1)[2] == "mixed (5 of 6 pairs agree)"  # idlg above ig: the one swap
    tied = levels(("idlg", 10.3, 9.2), ("ig", 10.3, 9.0), ("fedleak", 23.1, 14.0))
    assert ranking(trend, tied, 1)[2] == "agrees"  # the tie idlg = ig is not judged


# SoK Table 2 (LPIPS, lower = better reconstruction), CIFAR-10, GIA-O: WST (the attacker who
# knows the mini-batches) against BST, per number of mini-batches. Published: 1: 0.0172 both
# (one attack); 2: WST 0.0610 < BST 0.0641 (WST better); 4: WST 0.1117 > BST 0.1075 (WST worse).
SOK_TABLE2 = {"1": (0.0172, 0.0172), "2": (0.0610, 0.0641), "4": (0.1117, 0.1075)}


def case_verdicts(measured: dict[str, tuple[float, float]], column: str = "lpips") -> dict[str, str]:
    """The WST-vs-BST verdict per number of mini-batches, through `verdicts` as `evalgrid table`
    calls it; ``measured`` gives (WST, BST) per number of mini-batches in ``column``."""
    from evalgrid.tables.compare import Compared
    from evalgrid.tables.definition import TableDefinition, Value
    from evalgrid.tables.measure import MeasuredValue
    from evalgrid.tables.verdicts import verdicts

    lpips = Value("lpips", "lpips", fallback="psnr")
    trend = Trend("lpips", "case", "reference", reference="BST")
    definition = TableDefinition(
        name="sok_table2", source=Path("sok_table2.toml"), title="", paper="", kind="numbers", grid=Path("grid.toml"),
        smoke=None,
        published=Path("published.csv"), published_where=(), notes=(), rows=("case",), columns=("minibatches",),
        keys=(), values=(lpips,), trends=(trend,))
    rows = [Compared((case, count), "lpips", SOK_TABLE2[count][index], measured[count][index], math.nan, 1, 1)
            for count in measured for index, case in enumerate(("WST", "BST"))]
    found = verdicts(definition, trend, rows, {"lpips": MeasuredValue(lpips, column)})
    return {dict(verdict.series)["minibatches"]: verdict.outcome for verdict in found}


def test_wst_against_bst_follows_the_published_sign_at_each_number_of_minibatches():
    """WST better at 2 and worse at 4, as published: both agree; 1 (a published tie) is not judged."""
    measured = {"1": (0.02, 0.03), "2": (0.05, 0.07), "4": (0.12, 0.10)}
    assert case_verdicts(measured) == {"1": "unclear", "2": "agrees", "4": "agrees"}


def test_wst_against_bst_the_other_way_round_disagrees():
    """WST worse at 2 and better at 4: the opposite of the published signs at both."""
    measured = {"1": (0.02, 0.03), "2": (0.07, 0.05), "4": (0.10, 0.12)}
    assert case_verdicts(measured) == {"1": "unclear", "2": "disagrees", "4": "disagrees"}


def test_wst_against_bst_with_a_psnr_stand_in_is_judged_by_the_direction_of_leakage():
    """PSNR higher = LPIPS lower: WST's PSNR above BST's at 2 and below at 4 matches the paper."""
    measured = {"2": (12.0, 10.0), "4": (8.0, 9.0)}
    assert case_verdicts(measured, column="psnr") == {"2": "agrees", "4": "agrees"}


def test_the_command_offers_every_registered_format():
    from evalgrid.cli.table import FORMATS as OFFERED
    from evalgrid.tables.render import FORMATS

    assert list(OFFERED) == FORMATS.names()


def test_a_table_can_check_several_claims_of_the_paper(analysis, run, measured):
    rising = direction(measured) > 0
    definition = steps_table().replace("[trend]\nalong", "[[trend]]\nalong") + \
        '\n[[trend]]\nalong = "local_updates"\nkind = "reference"\nreference = 1\n'
    numbers = {1: 10.0, 2: 12.0, 4: 14.0} if rising else {1: 14.0, 2: 12.0, 4: 10.0}
    name = analysis(definition, published_csv("psnr", numbers))
    table = csv_table(name, run)
    assert set(table.loc[table.dataset == "cifar10", "trend_local_updates_monotone"]) == {"agrees"}
    assert "trend_local_updates_reference" in table.columns
    text = invoke("table", name, run).output
    assert "along local_updates (monotone)" in text and "along local_updates (reference, reference 1)" in text


def test_a_one_step_defense_chain_reads_like_its_component():
    from evalgrid.tables.definition import Key, Match
    from evalgrid.tables.measure import key_value

    one_step = {"defense": [{"name": "qsgd", "options": {"bits": 2}}]}
    assert key_value(Key("bits", factor="defense", option="bits"), one_step, None) == 2
    matched = Key("defense", factor="defense", matches=(Match((("name", "qsgd"), ("bits", 2)), "Q2"),))
    assert key_value(matched, one_step, None) == "Q2"
    assert key_value(Key("defense", factor="defense"), {"defense": []}, None) == "none"
    chain = {"defense": [{"name": "dpsgd", "options": {}}, {"name": "soteria", "options": {}}]}
    assert key_value(matched, chain, None) == "dpsgd+soteria"


def test_a_key_named_like_an_output_column_is_refused(analysis, run):
    definition = steps_table().replace('rows = ["dataset", "attack"]', 'rows = ["dataset", "measure"]') \
        .replace("[keys.attack]", "[keys.measure]")
    name = analysis(definition, published_csv("psnr", {1: 20.0, 2: 15.0, 4: 10.0}))
    result = invoke("table", name, run)
    assert result.exit_code == 2 and "keys.measure: a name the table's output uses for itself" in result.output


def judged(trend, key, pairs):
    """The trend's verdicts over series of two levels each: ``pairs`` {key value: {level: psnr}}."""
    from types import SimpleNamespace

    from evalgrid.tables.compare import Compared
    from evalgrid.tables.definition import Value
    from evalgrid.tables.measure import MeasuredValue
    from evalgrid.tables.verdicts import verdicts

    definition = SimpleNamespace(key_names=(trend.along, key))
    rows = [Compared((level, value), "psnr", math.nan, psnr, 0.0, 3, 3)
            for value, levels in pairs.items() for level, psnr in levels.items()]
    columns = {"psnr": MeasuredValue(Value("psnr", "psnr"), "psnr")}
    return verdicts(definition, trend, rows, columns)


def test_a_claim_about_some_series_judges_only_those():
    # SoK Fig. 4: GIA-L beats GIA-O on high-dimensional data; below 2,048 values nothing is claimed.
    trend = Trend("psnr", "attack", "reference", reference="G_L", expect="lower", expect_source="Sec. 4.2.1",
                  claimed_from=(("dimension", 2048.0),))
    verdicts = judged(trend, "dimension", {"256": {"G_L": 9.0, "G_O": 12.0}, "2048": {"G_L": 12.0, "G_O": 10.0},
                                           "4096": {"G_L": 11.0, "G_O": 9.5}})
    assert [verdict.series_text for verdict in verdicts] == ["dimension = 2048", "dimension = 4096"]
    assert all(verdict.outcome == "agrees" for verdict in verdicts)  # G_O below G_L at both; 256 not claimed


def test_a_claim_about_the_smallest_shares_judges_only_those():
    # FedLeak Fig. 8: the bottom 20% of the update's elements leak far less than the top 20%.
    trend = Trend("psnr", "side", "reference", reference="top", expect="lower", expect_source="Sec. 8",
                  claimed_to=(("share", 20.0),))
    verdicts = judged(trend, "share", {"10": {"top": 15.0, "bottom": 5.0}, "20": {"top": 18.0, "bottom": 6.0},
                                       "60": {"top": 25.0, "bottom": 26.0}})
    assert [verdict.series_text for verdict in verdicts] == ["share = 10", "share = 20"]
    assert all(verdict.outcome == "agrees" for verdict in verdicts)  # 60 (bottom above top) not claimed


def test_a_picture_lists_each_cells_reconstruction_panel(analysis, run):
    definition = steps_table().replace("[trend]\nalong = \"local_updates\"\n", "").replace(
        'paper = "A paper, Table 1"', 'paper = "A paper, Figure 2"\nkind = "picture"')
    name = analysis(definition)
    listed = invoke("table", "--list")
    assert "picture only: reconstructions beside the originals" in listed.output
    shown = invoke("table", name, run)
    assert shown.exit_code == 0, shown.output
    panels = [line for line in shown.output.splitlines() if line.startswith("- ") and "](" in line]
    assert len(panels) == 6  # one per done cell: 3 U x 2 seeds
    assert panels[0].startswith("- dataset = cifar10 (measured: digits), attack = O, local_updates = ")
    path = Path(panels[0].rsplit("](", 1)[1].rstrip(")"))
    assert path.name == "reconstruction.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kind", ["not an experiment", "not reproduced yet"])
def test_a_table_without_a_grid_is_listed_with_its_reason_and_not_regenerated(analysis, run, kind):
    name = analysis(f'title = "A survey"\npaper = "A paper, Table 9"\nkind = "{kind}"\n'
                    f'reason = "a summary of the literature; nothing was measured."\n', name="survey")
    listed = invoke("table", "--list")
    assert f"survey: A survey\n    {kind}: a summary of the literature" in listed.output
    refused = invoke("table", name, run)
    assert refused.exit_code == 2 and kind in refused.output and "Traceback" not in refused.output


CURVE_TABLE = """
title = "Convergence (a test table)"
paper = "A paper, Figure 6"
grid = "GRIDS/steps-paper.toml"
smoke = "GRIDS/steps-smoke.toml"
rows = ["local_updates"]
columns = ["share"]
curve_at = [0.5, 1.0]

[keys.local_updates]
column = "local_steps"

[keys.share]
column = "curve_share"

[values.psnr]
measured = "curve_psnr"

[trend]
along = "share"
kind = "monotone"
expect = "increasing"
expect_source = "a test"
"""


def test_a_table_reads_each_cells_convergence_record_at_shares_of_its_steps(analysis, run):
    table = csv_table(analysis(CURVE_TABLE, name="curves"), run)
    frame, curves = evalgrid.load(run), evalgrid.load_curves(run)
    for u in (1, 2, 4):
        cells = frame[frame["local_steps"] == u]["cell_id"]
        for share, step in ((0.5, 10), (1.0, 20)):  # 20 IG iterations, a point at every step
            per_cell = [curves[(curves["cell_id"] == cell) & (curves["iteration"] == step)]["psnr"].mean()
                        for cell in cells]
            row = table[(table["local_updates"] == u) & (table["share"] == share)]
            assert row["measured_mean"].item() == pytest.approx(sum(per_cell) / len(per_cell), rel=1e-9)
            assert row["cells"].item() == len(per_cell) == 2


def test_a_table_read_along_curves_still_counts_each_cell_once(analysis, run):
    shown = invoke("table", analysis(CURVE_TABLE, name="curves"), run)
    assert shown.exit_code == 0 and "6 cells done, 0 failed" in shown.output  # 3 local steps x 2 seeds


def test_curve_columns_need_curve_at(analysis, run):
    name = analysis(CURVE_TABLE.replace("curve_at = [0.5, 1.0]\n", ""), name="curves")
    result = invoke("table", name, run)
    assert result.exit_code == 2 and "values.psnr.measured:" in result.output and "curve_at = [" in result.output


def test_curve_at_takes_shares_of_the_steps(analysis, run):
    name = analysis(CURVE_TABLE.replace("curve_at = [0.5, 1.0]", "curve_at = [0.5, 20]"), name="curves")
    result = invoke("table", name, run)
    assert result.exit_code == 2 and "curve_at:" in result.output and "(0, 1]" in result.output
