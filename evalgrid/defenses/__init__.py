"""Defense registry. ``build(options)`` returns a :class:`~evalgrid.defenses.base.Defense`
whose ``apply(update, client)`` returns a new :class:`~evalgrid.threat_model.SharedUpdate`
made on the client's side; DP-SGD and secure aggregation act through the attributes of
:class:`Defense` instead. Compositions: :mod:`evalgrid.defenses.chain`. "none" (no defense)
is the empty composition, written by the grid, not a registered defense."""

from __future__ import annotations

from evalgrid.defenses import (clipping, dpsgd, gaussian, outpost, qsgd, secure_aggregation, signsgd, soteria,
                               topk)
from evalgrid.defenses.base import ClientSide, Defense
from evalgrid.defenses.chain import DefenseChain, check_composition
from evalgrid.registry import Component, Registry

DEFENSES: Registry[Component] = Registry("defense")
DEFENSES.register("qsgd", Component(
    "qsgd", qsgd.QSGDOptions, qsgd.build,
    "QSGD (Alistarh et al. 2017): unbiased stochastic quantization to s = 2^bits - 1 levels of each bucket's max "
    "(or L2) norm"))
DEFENSES.register("signsgd", Component(
    "signsgd", signsgd.SignSGDOptions, signsgd.build,
    "signSGD (Bernstein et al. 2018): only the sign of every coordinate is shared"))
DEFENSES.register("topk", Component(
    "topk", topk.TopKOptions, topk.build,
    "top-k sparsification (SoK): keep the ceil(keep*n) largest-magnitude coordinates, zero the rest"))
DEFENSES.register("clipping", Component(
    "clipping", clipping.ClippingOptions, clipping.build,
    "flat clipping (SoK, McMahan et al.): the whole update's L2 norm to at most bound, or every coordinate to "
    "[-bound, bound]"))
DEFENSES.register("gaussian", Component(
    "gaussian", gaussian.GaussianOptions, gaussian.build,
    "Gaussian perturbation (SoK): add N(0, sigma^2) to every coordinate of the update"))
DEFENSES.register("dpsgd", Component(
    "dpsgd", dpsgd.DPSGDOptions, dpsgd.build,
    "DP-SGD (Abadi et al. 2016) in the local training: per-sample clipping and Gaussian noise; RDP epsilon"))
DEFENSES.register("soteria", Component(
    "soteria", soteria.SoteriaOptions, soteria.build,
    "Soteria (Sun et al. 2021): prune the last layer's weight-gradient columns of the most revealing features"))
DEFENSES.register("outpost", Component(
    "outpost", outpost.OutpostOptions, outpost.build,
    "OUTPOST (Wang et al. 2023): prune, then Fisher-selected noise scaled by the layer's weight variance"))
DEFENSES.register("secure_aggregation", Component(
    "secure_aggregation", secure_aggregation.SecureAggregationOptions, secure_aggregation.build,
    "secure aggregation (Bonawitz et al. 2017): the server sees the mean update of K clients"))

__all__ = ["DEFENSES", "ClientSide", "Defense", "DefenseChain", "check_composition"]
