"""The catalogue's entries for the built-in training stages (which global model is attacked)
and local trainings (what the victim computes and shares), in the order ``components`` lists
them. Reading them imports no torch: each ``build`` names its function in
:mod:`evalgrid.fl.stage` or :mod:`evalgrid.fl.local_training`, imported on first use."""

from __future__ import annotations

from evalgrid.catalogue.entries import LocalTrainingEntry, StageEntry
from evalgrid.fl.options import FedAvgOptions, FedAvgStageOptions, FedSGDOptions, InitialOptions

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
)
