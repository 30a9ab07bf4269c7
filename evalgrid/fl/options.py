"""The options of the built-in training stages and local trainings, with the paper presets as
defaults. They live apart from the training code so that the catalogue, and with it ``plan``,
``status`` and grid validation, reads them without importing torch; :mod:`evalgrid.fl.stage`
and :mod:`evalgrid.fl.local_training` import them back.

A cell's id (and a stage's setup key) hashes these fields: renaming, reordering or retyping one
changes the id of every cell that names the component.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalgrid.catalogue.options import option

BatchNormMode = Literal["train", "eval"]


@dataclass(frozen=True)
class InitialOptions:
    test_samples: int = option(1000, minimum=0, doc="test images (the first of the test split) the accuracy "
                                                    "is measured on; 0: all")


@dataclass(frozen=True)
class FedAvgStageOptions:
    """Defaults: the SoK's stage experiment (Appendix B II: 5 clients, batch 128, lr 0.01, 10 local
    epochs, IID); FedLeak Sec. 6 uses 100 clients, and α ∈ {0.1, 0.5, 1, 5} for Dirichlet skew.
    ``local_steps`` is out of the setup key and cell ids while 0, so the grids from before it
    keep theirs."""

    round: int = option(1, minimum=0, doc="r: the model is attacked after r FedAvg rounds (SoK Fig. 7 sweeps 1-100)")
    clients: int = option(5, minimum=1, doc="M clients in the federation (SoK App. B: 5; FedLeak: 100)")
    clients_per_round: int = option(5, minimum=1, doc="K clients sampled each round (SoK App. B: all 5)")
    local_epochs: int = option(10, minimum=1, doc="E local epochs per round (SoK App. B: 10); unused when "
                                                  "local_steps > 0")
    local_steps: int = option(0, minimum=0, in_id_at_default=False,
                              doc="U > 0: every sampled client takes exactly U SGD steps per round, each on "
                                  "batch_size samples of its shard, reshuffled when a pass runs out (FedLeak "
                                  "Sec. 5-6.3: one step of a 16-64 batch per round; Table 9: U steps of 16); "
                                  "0: local_epochs passes over the shard")
    batch_size: int = option(128, minimum=1, doc="client mini-batch size (SoK App. B: 128); above the "
                                                  "shard size: the whole shard")
    lr: float = option(0.01, positive=True, doc="client learning rate (SoK App. B: 0.01)")
    split: Literal["iid", "dirichlet", "dirichlet_pfllib"] = option(
        "iid", doc="iid: equal IID shards; dirichlet: equal shards, each client's class proportions ~ Dir(alpha) "
                   "(Hsu et al.); dirichlet_pfllib: PFLlib's partition of the whole split, per class client "
                   "proportions ~ Dir(alpha), unequal shards (FedLeak Table 6; the heterogeneity 'dirichlet')")
    alpha: float = option(0.5, positive=True, doc="Dirichlet concentration; smaller is more skewed (FedLeak Table 6)")
    samples_per_client: int = option(0, minimum=0, doc="shard size; 0: the train split shared evenly by the clients "
                                                       "(dirichlet_pfllib: must be 0, shard sizes are drawn)")
    test_samples: int = option(1000, minimum=0, doc="test images (the first of the test split) the accuracy "
                                                    "is measured on; 0: all")


# The model's mode while the client computes its update. Default eval: Inverting Gradients'
# reference (inversefed's reconstruct_image.py and rec_mult.py call model.eval() before the
# victim's gradient and the reconstruction) and breaching's honest-but-curious user (eval when
# the server provides its buffers, the default) both compute the update in eval mode; the SoK's
# Table 4 ("remove dropout" 0.0044 -> 0.0043) implies dropout was off. In train mode BatchNorm
# normalises with the batch's own statistics and dropout is active: the client's dropout mask is
# then drawn independently of the attacker's, which no attacker can reproduce.
BN_MODE_DOC = ("eval: BatchNorm uses its running statistics and dropout is off (inversefed, breaching); "
               "train: batch statistics and active dropout")


@dataclass(frozen=True)
class FedSGDOptions:
    bn_mode: BatchNormMode = option("eval", doc=BN_MODE_DOC)
    share_bn_statistics: bool = option(False, doc="the update carries each BN layer's batch mean and variance")


@dataclass(frozen=True)
class FedAvgOptions:
    local_steps: int = option(1, minimum=1, doc="U local SGD steps (used when local_epochs is 0)")
    local_epochs: int = option(0, minimum=0, doc="E > 0: U = E·⌈N/b⌉ steps, E passes over the N samples")
    minibatch_size: int = option(0, minimum=0, doc="b samples per step; 0: all N (full-batch steps)")
    lr: float = option(1e-4, positive=True, doc="local learning rate η (inversefed's multi-step setting)")
    bn_mode: BatchNormMode = option("eval", doc=BN_MODE_DOC)
    share_bn_statistics: bool = option(False, doc="the update carries each BN layer's batch mean and variance")


# The victim's local data under heterogeneity (the `heterogeneity` factor; evalgrid.fl.partition).
# FedLeak Sec. 6.3 (Table 5): label, quantity and feature skew; Table 6: Dirichlet label skew.
LOCAL_DATASET_DOC = "images in each client's local dataset (FedLeak Sec. 6.3: 200 of Lung-Colon's 20,000 per client)"
TotalVariationBand = Literal["0-20", "20-40", "40-60", "60-80", "80-100"]


@dataclass(frozen=True)
class LabelSkewOptions:
    classes: int = option(1, minimum=1, doc="c: the distinct classes each client's local dataset holds, drawn at "
                                            "random (FedLeak Table 5: 1-5 of Lung-Colon's 5)")
    samples: int = option(200, minimum=1, doc=LOCAL_DATASET_DOC + "; shared evenly by its c classes")


@dataclass(frozen=True)
class QuantitySkewOptions:
    samples: int = option(200, minimum=1, doc="images in the client's local dataset, drawn uniformly from the "
                                              "split (FedLeak Table 5: 50, 100, 150, 200, 250)")


@dataclass(frozen=True)
class FeatureSkewOptions:
    band: TotalVariationBand = option("0-20", doc="the percentile range of total variation that every image of the "
                                                  "client lies in (FedLeak Table 5's five groups; 0-20: the "
                                                  "simplest images)")
    samples: int = option(200, minimum=1, doc=LOCAL_DATASET_DOC)


@dataclass(frozen=True)
class DirichletOptions:
    """PFLlib's ``separate_data(partition="dir")`` (FedLeak Table 6's footnote): per class,
    client proportions ~ Dir(α·1_M), clients already holding N/M images excluded."""

    alpha: float = option(0.1, positive=True, doc="α: smaller is more heterogeneous (PFLlib's default 0.1; FedLeak "
                                                  "Table 6: 0.1, 0.5, 1, 5)")
    clients: int = option(100, minimum=1, doc="M clients the victims' split is partitioned among (FedLeak Sec. 5: 100)")
    least_samples: int = option(1, minimum=1, doc="the partition is redrawn until every client holds at least "
                                                  "min(this, N/(2M)) images (PFLlib: 1 until March 2024; its later "
                                                  "40 is out of reach at M = 100, alpha = 0.1 on 5 classes)")
