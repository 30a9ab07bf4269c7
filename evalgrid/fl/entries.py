"""The catalogue's entries for the built-in training stages (which global model is attacked),
local trainings (what the victim computes and shares) and heterogeneities (how the victim's
local dataset is drawn when clients are not IID), in the order ``components`` lists them.
Reading them imports no torch: each ``build`` names its function in :mod:`evalgrid.fl.stage`,
:mod:`evalgrid.fl.local_training` or :mod:`evalgrid.fl.partition`, imported on first use."""

from __future__ import annotations

from evalgrid.catalogue.entries import HeterogeneityEntry, LocalTrainingEntry, StageEntry
from evalgrid.fl.options import (DirichletOptions, FeatureSkewOptions, FedAvgOptions, FedAvgStageOptions,
                                 FedSGDOptions, InitialOptions, LabelSkewOptions, QuantitySkewOptions)

ENTRIES = (
    StageEntry(
        name="initial", options=InitialOptions, build="evalgrid.fl.stage:initial_stage",
        summary="the initialised global model, before any training", trains=False),
    StageEntry(
        name="fedavg", options=FedAvgStageOptions, build="evalgrid.fl.stage:fedavg_stage",
        summary="the global model after `round` FedAvg rounds (K of M clients, E local epochs or U local steps of "
                "SGD, weighted averaging)",
        trains=True),
    LocalTrainingEntry(
        name="fedsgd", options=FedSGDOptions, build="evalgrid.fl.local_training:fedsgd_training",
        summary="FedSGD: the client shares the gradient of its mean loss over all N samples"),
    LocalTrainingEntry(
        name="fedavg", options=FedAvgOptions, build="evalgrid.fl.local_training:fedavg_training",
        summary="FedAvg: U mini-batch SGD steps; the server sees (W_0 - W_U)/lr, the summed step gradients"),
    HeterogeneityEntry(
        name="label_skew", options=LabelSkewOptions, build="evalgrid.fl.partition:label_skew",
        preflight="evalgrid.fl.partition:preflight_label_skew",
        summary="label skew (FedLeak Table 5): the client's local dataset holds c random classes, shared evenly"),
    HeterogeneityEntry(
        name="quantity_skew", options=QuantitySkewOptions, build="evalgrid.fl.partition:quantity_skew",
        preflight="evalgrid.fl.partition:preflight_quantity_skew",
        summary="quantity skew (FedLeak Table 5): the client's local dataset is `samples` images drawn uniformly"),
    HeterogeneityEntry(
        name="feature_skew", options=FeatureSkewOptions, build="evalgrid.fl.partition:feature_skew",
        preflight="evalgrid.fl.partition:preflight_feature_skew",
        summary="feature skew (FedLeak Table 5): the client's images lie in one percentile band of total variation"),
    HeterogeneityEntry(
        name="dirichlet", options=DirichletOptions, build="evalgrid.fl.partition:dirichlet",
        preflight="evalgrid.fl.partition:preflight_dirichlet",
        summary="Dirichlet label skew (FedLeak Table 6): PFLlib's partition among M clients, the victim one of them"),
)
