"""The priors' options: frozen dataclasses whose defaults are the presets of the papers that
trained them. Torch-free, so that reading a grid does not import the networks.

A prior's options enter the id of every cell that uses it and the key of its cache folder:
they say what the prior is trained on (``data``), how (``epochs``, ...), and from which seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalgrid.catalogue.options import option

VICTIM_DATA = "victim"


def _data_choices() -> list[str]:
    from evalgrid.catalogue import DATASETS

    return [VICTIM_DATA, *DATASETS.names()]


def data_option() -> str:
    return option(VICTIM_DATA, choices=_data_choices,
                  doc="the auxiliary data: 'victim' = the victims' dataset, the split they are not drawn "
                      "from (disjoint by construction); or a dataset's name (its train split, default "
                      "options: the out-of-distribution experiment), converted to the victims' channels "
                      "and image side")


@dataclass(frozen=True)
class DCGANOptions:
    """Radford et al. 2016's DCGAN as GIAS (Jeon et al. 2021) trains it for CIFAR-10: z ∈ R^100,
    generator width 64, Adam(2e-4, β1 = 0.5), batch 64, 200 epochs (``netG_epoch_199``)."""

    data: str = data_option()
    data_split: Literal["train", "test"] = option(
        "train", doc="the split of the dataset `data` names (with data = 'victim': unused, the split the victims "
                     "are not drawn from is taken)")
    samples: int = option(0, minimum=0, doc="auxiliary images used, the first of the split; 0: all")
    latent: int = option(100, minimum=1, doc="dimension of z ~ N(0, I)")
    width: int = option(64, minimum=1, doc="ngf = ndf: channels of the last generator / first discriminator layer")
    epochs: int = option(200, minimum=1, doc="passes over the auxiliary images")
    batch_size: int = option(64, minimum=1, doc="images per step")
    lr: float = option(2e-4, positive=True, doc="Adam step size of both networks (DCGAN: 2e-4)")
    beta1: float = option(0.5, minimum=0.0, maximum=0.999, doc="Adam's β1 (DCGAN: 0.5)")
    seed: int = option(0, minimum=0, maximum=2**63 - 1, doc="seeds the networks' weights and the batches")


@dataclass(frozen=True)
class DCGANCheckpointOptions:
    """A DCGAN generator trained elsewhere (the official CIFAR-10 weights GIAS loads,
    ``netG_epoch_199.pth``, or the user's), with the architecture options it was built with."""

    path: str = option("", doc="a saved generator state dict (plain, or under 'state_dict'), loaded strictly "
                               "with weights_only=True; required")
    latent: int = option(100, minimum=1, doc="dimension of z it was trained with")
    width: int = option(64, minimum=1, doc="its ngf")
    pointwise_head: bool = option(True, doc="it ends with a 1x1 transposed convolution (GIAS's CIFAR-10 weights); "
                                            "false: DCGAN's stride-2 ending (evalgrid's own dcgan prior)")


@dataclass(frozen=True)
class RefinerOptions:
    """ROG's post-processing network (Yue et al. 2023, ``networks/generator.py`` ``Generator``, the
    denoiser): a U-Net that restores an image from the coarse reconstruction ROG's representation
    gives, here trained by evalgrid to undo that degradation on the auxiliary images."""

    data: str = data_option()
    data_split: Literal["train", "test"] = option(
        "train", doc="the split of the dataset `data` names (with data = 'victim': unused)")
    samples: int = option(0, minimum=0, doc="auxiliary images used, the first of the split; 0: all")
    width: int = option(64, minimum=1, doc="channels of the first layer (ROG: 64; 128, 256, 512 below it)")
    downsample: int = option(4, minimum=1, doc="the degradation undone: bicubic down- and upsampling by this "
                                              "factor, ROG's representation (its sf = 4)")
    noise: float = option(0.05, minimum=0.0, doc="standard deviation of the Gaussian pixel noise added to the "
                                                  "degraded training inputs (the attack's residual error)")
    epochs: int = option(50, minimum=1, doc="passes over the auxiliary images")
    batch_size: int = option(32, minimum=1, doc="images per step")
    lr: float = option(2e-4, positive=True, doc="Adam step size")
    seed: int = option(0, minimum=0, maximum=2**63 - 1, doc="seeds the weights, the batches and the noise")
