"""The catalogue's entries for the built-in defenses, in the order ``components`` lists them.
Reading them imports no torch: each ``build`` names its implementation module, imported when a
cell first builds the defense."""

from __future__ import annotations

from evalgrid.catalogue.entries import DefenseEntry
from evalgrid.defenses.options import (AdaptiveDPOptions, ClippingOptions, DPSGDOptions, GaussianOptions,
                                       OutpostOptions, QSGDOptions, SecureAggregationOptions, SignSGDOptions,
                                       SoteriaOptions, TopKOptions)

ENTRIES = (
    DefenseEntry(
        name="qsgd", options=QSGDOptions, build="evalgrid.defenses.qsgd:build",
        summary="QSGD (Alistarh et al. 2017): unbiased stochastic quantization to s = 2^bits - 1 levels of each "
                "bucket's max (or L2) norm"),
    DefenseEntry(
        name="signsgd", options=SignSGDOptions, build="evalgrid.defenses.signsgd:build",
        summary="signSGD (Bernstein et al. 2018): only the sign of every coordinate is shared"),
    DefenseEntry(
        name="topk", options=TopKOptions, build="evalgrid.defenses.topk:build",
        summary="top-k sparsification (SoK): keep the ceil(keep*n) largest-magnitude coordinates, zero the rest"),
    DefenseEntry(
        name="clipping", options=ClippingOptions, build="evalgrid.defenses.clipping:build",
        summary="flat clipping (SoK, McMahan et al.): the whole update's L2 norm to at most bound, or every "
                "coordinate to [-bound, bound]"),
    DefenseEntry(
        name="gaussian", options=GaussianOptions, build="evalgrid.defenses.gaussian:build",
        summary="Gaussian perturbation (SoK): add N(0, sigma^2) to every coordinate of the update"),
    DefenseEntry(
        name="dpsgd", options=DPSGDOptions, build="evalgrid.defenses.dpsgd:build",
        summary="DP-SGD (Abadi et al. 2016) in the local training: per-sample clipping and Gaussian noise; "
                "RDP epsilon"),
    DefenseEntry(
        name="adaptive_dp", options=AdaptiveDPOptions, build="evalgrid.defenses.adaptive_dp:build",
        summary="adaptive DP (Adap DP-FL, Fu et al. 2022): DP-SGD in the local training with a per-round clip bound "
                "and a noise multiplier decayed by beta per round, sigma_0*beta^d; RDP epsilon of the round"),
    DefenseEntry(
        name="soteria", options=SoteriaOptions, build="evalgrid.defenses.soteria:build",
        summary="Soteria (Sun et al. 2021): prune the last layer's weight-gradient columns of the most revealing "
                "features"),
    DefenseEntry(
        name="outpost", options=OutpostOptions, build="evalgrid.defenses.outpost:build",
        summary="OUTPOST (Wang et al. 2023): prune, then Fisher-selected noise scaled by the layer's weight "
                "variance"),
    DefenseEntry(
        name="secure_aggregation", options=SecureAggregationOptions, build="evalgrid.defenses.secure_aggregation:build",
        summary="secure aggregation (Bonawitz et al. 2017): the server sees the mean update of K clients",
        last_in_chain=True),
)
