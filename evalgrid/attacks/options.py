"""The attacks' options: frozen dataclasses whose defaults are each paper's preset (see each
attack's module for the equations and where the code departs from them). Torch-free, so that
reading a grid does not import the attacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from evalgrid.attacks.stopping import tolerance_option, window_option
from evalgrid.catalogue.options import option

Init = Literal["randn", "rand"]  # dummy data: N(0, 1) in input space, or uniform pixels
GradientDistance = Literal["euclidean", "l2", "cosine"]  # GradInversion's gradient distance
Distance = Literal["l1_and_cosine", "cosine", "l1"]  # the gradient terms of FedLeak's Sec. 4.4 that are kept


def label_rules() -> list[str]:
    """The label inference rules of the catalogue (built-in and installed)."""
    from evalgrid.catalogue import LABEL_RULES

    return LABEL_RULES.names()


def label_rule_option(default: str, doc: str = "label rule when the labels are not known") -> Any:
    """An attack's ``label_inference``: the name of a label inference rule."""
    return option(default, doc=doc, choices=label_rules)


def _joint_or_rule() -> list[str]:
    return ["joint", *label_rules()]


@dataclass(frozen=True)
class DLGOptions:
    iterations: int = option(300, minimum=1, doc="outer L-BFGS steps (DLG's code and figures: 300)")
    lr: float = option(1.0, positive=True, doc="L-BFGS step size (torch's default, used by DLG)")
    lbfgs_max_iter: int = option(20, minimum=1, doc="L-BFGS iterations per step (torch's default, used by DLG)")
    init: Init = option("randn", doc="dummy data: 'randn' N(0, 1) in input space, 'rand' uniform pixels")
    label_inference: str = option(
        "joint", choices=_joint_or_rule,
        doc="labels when not known: 'joint' optimises dummy labels with the data (DLG), else a rule")
    early_stop_window: int = window_option("gradient distance D (at the start of an L-BFGS step)")
    early_stop_tolerance: float = tolerance_option()


@dataclass(frozen=True)
class IDLGOptions:
    iterations: int = option(300, minimum=1, doc="outer L-BFGS steps (iDLG's code: 300)")
    lr: float = option(1.0, positive=True, doc="L-BFGS step size (iDLG's code: 1.0)")
    lbfgs_max_iter: int = option(20, minimum=1, doc="L-BFGS iterations per step (torch's default)")
    init: Init = option("randn", doc="dummy data: 'randn' N(0, 1) in input space, 'rand' uniform pixels")
    early_stop_window: int = window_option("gradient distance D (at the start of an L-BFGS step)")
    early_stop_tolerance: float = tolerance_option()


@dataclass(frozen=True)
class InvertingGradientsOptions:
    iterations: int = option(24_000, minimum=1, doc="Adam steps per restart (inversefed, CIFAR-10)")
    lr: float = option(0.1, positive=True, doc="Adam step size")
    tv: float = option(1e-4, minimum=0, doc="weight of the total-variation prior")
    restarts: int = option(1, minimum=1, doc="independent trials; the best gradient match is returned")
    signed: bool = option(True, doc="step on the sign of the gradient")
    boxed: bool = option(True, doc="clamp the dummy pixels into [0, 1] after every step")
    lr_decay: bool = option(True, doc="learning rate ×0.1 at 3/8, 5/8 and 7/8 of the iterations")
    init: Init = option("randn", doc="dummy data: 'randn' N(0, 1) in input space, 'rand' uniform pixels")
    label_inference: str = label_rule_option("idlg")
    early_stop_window: int = window_option("loss (cosine distance + TV)")
    early_stop_tolerance: float = tolerance_option()


@dataclass(frozen=True)
class GradInversionOptions:
    iterations: int = option(20_000, minimum=1, doc="Adam steps, every restart in lock-step (breaching's preset: 20k)")
    lr: float = option(0.1, positive=True, doc="Adam step size")
    lr_decay: bool = option(True, doc="cosine decay of the step size to 0 over the iterations")
    distance: GradientDistance = option(
        "l2", doc="'l2': Σ_l ||∇W'_l - ∇W_l||_2 (Yin et al.), 'euclidean': scale·½·Σ_l ||∇W'_l - ∇W_l||² "
                  "(breaching), 'cosine': 1 - cos over all layers")
    scale: float = option(1e-4, positive=True, doc="s, the weight of the 'euclidean' distance (breaching: 1e-4)")
    bn: float = option(0.1, minimum=0, doc="α_BN, weight of the BatchNorm-statistics prior")
    bn_first_layer: float = option(1.0, minimum=0, doc="m_1, the first BN layer's multiplier (Yin et al.: 1; "
                                                         "breaching, DeepInversion: 10)")
    tv: float = option(1e-4, minimum=0, doc="α_TV, weight of the total variation")
    l2: float = option(1e-6, minimum=0, doc="α_l2, weight of the image prior ½·mean(x'²) (breaching)")
    group: float = option(0.0, minimum=0, doc="α_group, pull of each restart towards the restarts' mean (no "
                                              "registration: off by default)")
    restarts: int = option(4, minimum=1, doc="the group: restarts optimised together; the best is returned")
    noise: float = option(0.0, minimum=0, doc="Langevin noise lr·noise·N(0, I) added to the gradient (Yin et "
                                              "al.: none; breaching: 0.01)")
    boxed: bool = option(True, doc="clamp the dummy pixels into [0, 1] after every step")
    init: Init = option("randn", doc="dummy data: 'randn' N(0, 1) in input space, 'rand' uniform pixels")
    label_inference: str = label_rule_option("yin")
    early_stop_window: int = window_option("loss (summed over the restarts, priors included)")
    early_stop_tolerance: float = tolerance_option()


@dataclass(frozen=True)
class FedLeakOptions:
    iterations: int = option(10_000, minimum=1, doc="Adam steps (FedLeak's cost figures: 10,000)")
    lr: float = option(0.1, positive=True, doc="Adam step size (lost from our copy of the paper; IG's 0.1)")
    partial: bool = option(True, doc="match only the largest `keep` share of the update's elements (false: all)")
    keep: float = option(0.5, positive=True, maximum=1.0, doc="share of elements matched, largest magnitude first")
    distance: Distance = option("l1_and_cosine", doc="gradient terms matched on Λ: 'l1_and_cosine' (Sec. 4.4), "
                                                     "'cosine' or 'l1' alone (Table 19's ablation)")
    blend: float = option(0.5, minimum=0.0, maximum=1.0,
                          doc="γ: the step uses (1 - γ)·∇L(x') + γ·∇L(look-ahead point); 0 turns it off")
    lookahead: float = option(0.1, positive=True, doc="h: RMS pixel change of the descent step to the look-ahead point")
    tv: float = option(1e-4, minimum=0.0, doc="α, weight of the total variation (lost from our copy; IG's 1e-4)")
    activation: float = option(1e-4, minimum=0.0, doc="β, weight of the activation prior Σ_l mean|F_l| (Table 18)")
    init: Init = option("randn", doc="dummy data: 'randn' N(0, 1) in input space, 'rand' uniform pixels")
    label_inference: str = label_rule_option("fedleak")
    early_stop_window: int = window_option("objective L(x') (at x', not at the look-ahead point)")
    early_stop_tolerance: float = tolerance_option()


@dataclass(frozen=True)
class GIALOptions:
    latent_iterations: int = option(400, minimum=1, doc="Adam steps on the latent vectors z, every restart in "
                                                       "lock-step (SoK App. B: 400)")
    generator_iterations: int = option(6000, minimum=0, doc="then Adam steps on the generator's parameters, one "
                                                            "copy per image (SoK App. B: 6,000); 0: latent search only")
    lr: float = option(3e-2, positive=True, doc="Adam step size on z (GIAS's scripts: 3e-2)")
    generator_lr: float = option(1e-3, positive=True, doc="Adam step size on the generators' parameters (GIAS: 1e-3)")
    tv: float = option(1e-6, minimum=0, doc="weight of the total variation of the generated images (GIAS: 1e-6)")
    restarts: int = option(3, minimum=1, doc="independent z searched together; the best gradient match goes on to "
                                             "the generator stage (GIAS: 3)")
    lr_decay: bool = option(True, doc="each stage's step size ×0.1 at 3/8, 5/8 and 7/8 of its iterations (GIAS)")
    label_inference: str = label_rule_option("idlg")
    early_stop_window: int = window_option("stage's loss (cosine + TV, summed over the restarts in the latent "
                                           "search); a stopped latent search goes on to the generator stage")
    early_stop_tolerance: float = tolerance_option()


Covariance = Literal["full", "diagonal"]  # CMA-ES's covariance matrix: n×n, or its diagonal (sep-CMA-ES)


@dataclass(frozen=True)
class GGLOptions:
    evaluations: int = option(25_000, minimum=1, doc="gradient evaluations (GGL's scripts: 500 rounds of 50 "
                                                     "candidates); a last partial generation is evaluated, not told")
    population: int = option(0, minimum=0, doc="λ, candidates per CMA-ES generation; 0: 4 + ⌊3 ln n⌋ for n = B × "
                                                "the prior's latent dimension (pycma's default, through nevergrad)")
    sigma: float = option(1.0, positive=True, doc="σ₀, CMA-ES's initial step size (nevergrad's CMA: scale 1)")
    covariance: Covariance = option("full", doc="'full': an n×n covariance matrix (CMA-ES, GGL's optimiser); "
                                                "'diagonal': its diagonal only (sep-CMA-ES), for large B")
    tanh: bool = option(True, doc="search u and decode z = tanh(u) (GGL's use_tanh); false: z = u, plus the "
                                  "kl term")
    kl: float = option(0.1, minimum=0, doc="weight of the KL divergence of each z's mean and spread from N(0, 1) "
                                           "(GGL: 0.1, only when tanh is false)")
    label_inference: str = label_rule_option("idlg")
    early_stop_window: int = window_option("best loss of a generation")
    early_stop_tolerance: float = tolerance_option()


Likelihood = Literal["gaussian", "laplacian"]  # BayesAttack's assumed noise on the shared update
Schedule = Literal["exponential", "warm_restarts"]  # BayesAttack's step-size schedule


@dataclass(frozen=True)
class BayesOptions:
    iterations: int = option(200, minimum=1, doc="Adam steps per restart (reference code: 2 x att_epochs = 200)")
    lr: float = option(0.5, positive=True, doc="Adam step size (reference scripts: att_lr 0.5)")
    schedule: Schedule = option(
        "exponential", doc="'exponential': lr·decay^t (reference code); 'warm_restarts': cosine annealing from lr "
                           "to 0 over restart_period steps, then back to lr (SGDR; FedLeak App. A's variant)")
    decay: float = option(0.94, positive=True, maximum=1.0,
                          doc="per-step factor of the 'exponential' schedule (reference scripts: 0.94; 1: constant)")
    restart_period: int = option(1000, minimum=1, doc="steps between warm restarts of the 'warm_restarts' schedule "
                                                      "(FedLeak App. A: 1000)")
    likelihood: Likelihood = option(
        "gaussian", doc="assumed noise on the shared update: 'gaussian' (-log p = ||g - ∇W'||²/(2σ²), an l2 "
                        "distance) or 'laplacian' (||g - ∇W'||_1/σ)")
    sigma: float = option(0.1, positive=True, doc="σ, the noise's standard deviation (gaussian) or scale "
                                                  "(laplacian) (reference scripts' defenses: 0.1)")
    anneal_iterations: int = option(100, minimum=0, doc="steps over which the likelihood's weight grows "
                                                        "geometrically to 1 (reference: att_epochs 100); 0: weight 1")
    anneal_start: float = option(0.1, positive=True, doc="c: the weight starts at min(c·σ², 1) (reference: "
                                                         "att_fac_start, default 0.1)")
    tv: float = option(1.0, minimum=0, doc="weight of the squared total-variation prior -log p(x) (reference "
                                           "scripts: 1.0)")
    restarts: int = option(1, minimum=1, doc="independent trials; the best gradient match is returned (FedLeak "
                                             "App. A's 'multiple start')")
    init: Init = option("randn", doc="dummy data: 'randn' N(0, 1) in input space (reference), 'rand' uniform pixels")
    label_inference: str = label_rule_option("idlg")
    early_stop_window: int = window_option("loss (weighted likelihood + TV)")
    early_stop_tolerance: float = tolerance_option()


@dataclass(frozen=True)
class ROGOptions:
    iterations: int = option(100, minimum=1, doc="Adam steps on the low-resolution representation (ROG's config: "
                                                 "T_max = 100)")
    lr: float = option(0.05, positive=True, doc="Adam step size (ROG's rog_lr), cosine-annealed to a tenth of it")
    downsample: int = option(4, minimum=1, doc="the representation's side is the image side over this (ROG: sf = 4)")
    refine: bool = option(True, doc="post-process the decoded images with the refiner prior (ROG's joint "
                                    "post-processing); false: return the decoded representation")
    label_inference: str = label_rule_option("idlg")
    early_stop_window: int = window_option("squared L2 gradient distance")
    early_stop_tolerance: float = tolerance_option()
