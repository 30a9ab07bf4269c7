"""The catalogue: every component a grid can name, built in or installed by the user, each
declared once by an entry (:mod:`evalgrid.catalogue.entries`) that carries its options,
summary, facts and the place of its implementation.

Reading the catalogue imports no torch: implementations are imported when a cell runs. The
built-in entries live beside their implementations (``evalgrid/attacks/entries.py``, ...);
installed packages add theirs through the ``evalgrid.components`` entry-point group
(:mod:`evalgrid.catalogue.plugins`). Both are loaded on the first lookup.
"""

from __future__ import annotations

from evalgrid.catalogue.entries import (AttackEntry, DatasetEntry, DefenseEntry, Entry, HeterogeneityEntry,
                                        InitEntry, LabelRuleEntry, LocalTrainingEntry, MetricEntry, ModelEntry,
                                        NoOptions, Origin, PriorEntry, Ref, StageEntry, ref)
from evalgrid.catalogue.registry import Registry, UnknownName

# The modules whose ENTRIES declare the built-in components, in the order `components` lists them.
BUILTIN_ENTRIES = ("evalgrid.data.entries", "evalgrid.models.entries", "evalgrid.fl.entries",
                   "evalgrid.defenses.entries", "evalgrid.priors.entries", "evalgrid.attacks.entries",
                   "evalgrid.metrics.entries")


def _load() -> None:
    """Fill every registry, on the first lookup of any of them: the built-ins, then each plugin."""
    from evalgrid.catalogue.plugins import load_entries

    for registry in REGISTRIES.values():
        registry.fill_with(None)
    try:
        load_entries(BUILTIN_ENTRIES, REGISTRIES)
    except BaseException:  # a broken plugin: no half-filled catalogue; the next lookup fails the same way
        for registry in REGISTRIES.values():
            registry.clear()
            registry.fill_with(_load)
        raise


DATASETS: Registry[DatasetEntry] = Registry("dataset", _load)
MODELS: Registry[ModelEntry] = Registry("model", _load)
INITS: Registry[InitEntry] = Registry("init", _load)
STAGES: Registry[StageEntry] = Registry("stage", _load)
LOCAL_TRAININGS: Registry[LocalTrainingEntry] = Registry("local training", _load)
HETEROGENEITIES: Registry[HeterogeneityEntry] = Registry("heterogeneity", _load)
DEFENSES: Registry[DefenseEntry] = Registry("defense", _load)
PRIORS: Registry[PriorEntry] = Registry("prior", _load)
ATTACKS: Registry[AttackEntry] = Registry("attack", _load)
LABEL_RULES: Registry[LabelRuleEntry] = Registry("label inference rule", _load)
METRICS: Registry[MetricEntry] = Registry("metric", _load)
REGISTRIES: dict[type[Entry], Registry] = {
    DatasetEntry: DATASETS, ModelEntry: MODELS, InitEntry: INITS, StageEntry: STAGES,
    LocalTrainingEntry: LOCAL_TRAININGS, HeterogeneityEntry: HETEROGENEITIES, DefenseEntry: DEFENSES,
    PriorEntry: PRIORS, AttackEntry: ATTACKS, LabelRuleEntry: LABEL_RULES, MetricEntry: METRICS}


__all__ = ["ATTACKS", "AttackEntry", "DATASETS", "DEFENSES", "DatasetEntry", "DefenseEntry", "Entry",
           "HETEROGENEITIES", "HeterogeneityEntry", "INITS", "InitEntry", "LABEL_RULES", "LOCAL_TRAININGS",
           "LabelRuleEntry", "LocalTrainingEntry", "METRICS", "MODELS", "MetricEntry", "ModelEntry", "NoOptions",
           "Origin", "PRIORS", "PriorEntry", "REGISTRIES", "Ref", "Registry", "STAGES", "StageEntry", "UnknownName",
           "ref"]
