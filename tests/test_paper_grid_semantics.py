"""Each paper grid and its smoke companion ask the same question: the same model mode, the same
threat model (what the attacker knows: the local configuration, the labels) and the same
defense semantics (what a defense's mode or scale means), so that a smoke run speaks for the
grid it stands in for. Sizes (models, data, iterations, strengths) may differ; these may not.

The expected values are written here from the papers (analysis/FIDELITY.md, last section), not
read from the grids: a grid that drifts from its paper's setting fails here too."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from evalgrid.grid import load_grid

pytestmark = pytest.mark.slow  # paper grids expand to up to 1,890 cells each

GRIDS = Path(__file__).resolve().parents[1] / "grids"
SMOKE_GRIDS = sorted((GRIDS / "sok" / "smoke").glob("*.toml")) + sorted((GRIDS / "fedleak" / "smoke").glob("*.toml"))
# Options that say what a defense means rather than how strong it is.
DEFENSE_SEMANTICS = {"clipping": ("mode",), "qsgd": ("norm", "bucket_size"), "topk": ("scope",)}

# What each paper's evaluation assumes (analysis/FIDELITY.md): the client computes its update in
# eval mode (inversefed, breaching); the SoK's GIA-O is given the labels, FedLeak infers them;
# FedLeak's server knows lr and batch size and so simulates the local steps; SoK Table 1's
# adversary (Theorem 4.2) matches one gradient to the U-step update; FedLeak scores each original
# against its nearest reconstruction.
EXPECTED = {
    "sok": {"bn_mode": {"eval"}, "labels": {"known"}, "matching": {"one_to_one"}},
    "fedleak": {"bn_mode": {"eval"}, "labels": {"inferred"}, "matching": {"nearest"}},
}
KNOWLEDGE = {"table1_local_updates": {False}, "table2_minibatch": {True, False},
             "table9_local_steps": {True}, "fig4_defenses": {True}}
# Where a grid departs from its paper's default on purpose (each in analysis/FIDELITY.md): SoK
# Fig. 10's untrained DenseNets need train-mode BatchNorm (in eval mode with fresh statistics their
# outputs ignore the input); FedLeak Table 11 (App. A, Sec. 3) assumes correctly inferred labels,
# which for one image is the true label.
EXCEPTIONS = {"fig10_dense_connections": {"bn_mode": {"train"}}, "table11_baselines_fc": {"labels": {"known"}}}


def semantics(path: Path) -> dict[str, set]:
    cells = load_grid(path).cells
    defenses = set()
    for cell in cells:
        for step in cell.defense.steps:
            keys = DEFENSE_SEMANTICS.get(step.name, ())
            defenses.add((step.name, tuple(getattr(step.options, k) for k in keys)))
    return {
        "bn_mode": {c.local_training.options.bn_mode for c in cells},
        "knows_local_config": {c.knows_local_config for c in cells},
        "labels": {c.labels for c in cells},
        "matching": {c.metric_options.matching for c in cells},
        "defense": defenses,
    }


@pytest.mark.parametrize("smoke", SMOKE_GRIDS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_a_smoke_grid_and_its_paper_grid_agree_on_mode_threat_model_and_defense_semantics(smoke):
    paper = smoke.parent.parent / smoke.name
    measured, published = semantics(smoke), semantics(paper)
    for key in ("bn_mode", "knows_local_config", "labels", "matching"):
        assert measured[key] <= published[key], f"{key}: smoke {measured[key]}, paper grid {published[key]}"
    # every defense meaning the smoke grid uses is one the paper grid uses
    assert measured["defense"] <= published["defense"], (measured["defense"], published["defense"])
    family = smoke.parent.parent.name
    for key, expected in {**EXPECTED[family], **EXCEPTIONS.get(smoke.stem, {})}.items():
        assert published[key] == expected, f"{paper.name}: {key} {published[key]}, the paper's {expected}"
    if smoke.stem in KNOWLEDGE:
        assert published["knows_local_config"] == KNOWLEDGE[smoke.stem]
        assert measured["knows_local_config"] == KNOWLEDGE[smoke.stem]


def test_clipping_in_the_papers_is_flat_norm_clipping_and_qsgd_scales_by_the_max():
    for name in ("fig11_privacy_utility", "table6_postprocessing"):
        defenses = semantics(GRIDS / "sok" / f"{name}.toml")["defense"]
        assert {d for d in defenses if d[0] == "clipping"} == {("clipping", ("norm",))}
        assert {d for d in defenses if d[0] == "qsgd"} == {("qsgd", ("max", 0))}


def test_the_default_model_mode_is_eval():
    from evalgrid.fl.local_training import FedAvgOptions, FedSGDOptions

    assert FedSGDOptions().bn_mode == FedAvgOptions().bn_mode == "eval"
    assert dataclasses.fields(FedSGDOptions)[0].name == "bn_mode"
