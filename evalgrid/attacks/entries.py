"""The built-in attacks and label inference rules, as catalogue entries: options (each paper's
preset), summary, facts, and the implementation imported when a cell runs."""

from __future__ import annotations

from evalgrid.attacks.options import (BayesOptions, DLGOptions, FedLeakOptions, GGLOptions, GIALOptions,
                                      GradInversionOptions, IDLGOptions, InvertingGradientsOptions, ROGOptions)
from evalgrid.catalogue.entries import AttackEntry, LabelRuleEntry

ENTRIES = (
    AttackEntry(
        name="dlg", options=DLGOptions, build="evalgrid.attacks.dlg:build",
        summary="Deep Leakage from Gradients (Zhu et al. 2019): L-BFGS on the squared L2 gradient distance, "
                "joint labels"),
    AttackEntry(
        name="idlg", options=IDLGOptions, build="evalgrid.attacks.idlg:build",
        summary="Improved DLG (Zhao et al. 2020): DLG's optimisation with labels read off the last layer's "
                "gradient"),
    AttackEntry(
        name="ig", options=InvertingGradientsOptions, build="evalgrid.attacks.inverting_gradients:build",
        stacked="evalgrid.attacks.stacked:StackedInvertingGradients",
        summary="Inverting Gradients (Geiping et al. 2020): signed Adam on cosine distance + TV, boxed, with "
                "restarts"),
    AttackEntry(
        name="gradinversion", options=GradInversionOptions, build="evalgrid.attacks.gradinversion:build",
        needs_shared_bn_statistics=True,
        summary="GradInversion (Yin et al. 2021): per-layer L2 gradient matching + shared-BN-statistics, TV and "
                "l2 priors (breaching's weights), restarts (the best one returned)"),
    AttackEntry(
        name="fedleak", options=FedLeakOptions, build="evalgrid.attacks.fedleak:build",
        summary="FedLeak (Fan et al. 2025): Adam on L1 + cosine over the top-50% update elements, TV, activation "
                "L1, look-ahead gradient blending"),
    AttackEntry(
        name="gia_l", options=GIALOptions, build="evalgrid.attacks.gia_l:build", prior="generator",
        summary="GIA-L (Jeon et al. 2021, GIAS): Adam on a generator's latent z, then on per-image copies of the "
                "generator's weights; cosine + TV"),
    AttackEntry(
        name="bayes", options=BayesOptions, build="evalgrid.attacks.bayes:build",
        summary="BayesAttack (Balunovic et al. 2022): Adam on the annealed Gaussian (l2) or Laplacian (l1) "
                "negative log-likelihood of the update + a squared-TV prior; restarts, optional warm restarts"),
    AttackEntry(
        name="rog", options=ROGOptions, build="evalgrid.attacks.rog:build", prior="refiner",
        summary="ROG (Yue et al. 2023; FedLeak's ROGS): Adam on a x4 lower-resolution representation decoded "
                "bicubically, squared L2 gradient distance, then a refiner network's post-processing"),
    AttackEntry(
        name="ggl", options=GGLOptions, build="evalgrid.attacks.ggl:build", prior="generator",
        summary="GGL (Li et al. 2022): CMA-ES over a generator's latent z (tanh-squashed), squared L2 gradient "
                "distance; the best candidate evaluated"),
    LabelRuleEntry(
        name="idlg", build="evalgrid.attacks.labels:idlg",
        summary="iDLG (Zhao et al. 2020): the argmin of the last layer's weight-gradient row sums (B > 1: "
                "FedLeak's rule)"),
    LabelRuleEntry(
        name="yin", build="evalgrid.attacks.labels:yin",
        summary="GradInversion (Yin et al. 2021): the B rows with the most negative minimum"),
    LabelRuleEntry(
        name="fedleak", build="evalgrid.attacks.labels:fedleak",
        summary="FedLeak (Fan et al. 2025): the B most negative row sums; counts from them when B > K"),
)
