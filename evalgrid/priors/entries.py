"""The built-in adversary priors as catalogue entries: each trained by evalgrid on auxiliary data,
or loaded from the user's file (the official pretrained weights, or their own)."""

from __future__ import annotations

from evalgrid.catalogue.entries import PriorEntry
from evalgrid.priors.options import DCGANCheckpointOptions, DCGANOptions, RefinerOptions

ENTRIES = (
    PriorEntry(
        name="dcgan", options=DCGANOptions, provides="generator", build="evalgrid.priors.dcgan:build",
        train="evalgrid.priors.dcgan:train", preflight="evalgrid.priors.dcgan:preflight",
        summary="DCGAN generator (Radford et al. 2016; GIAS's CIFAR-10 architecture) trained by evalgrid on "
                "auxiliary data disjoint from the victims"),
    PriorEntry(
        name="dcgan_checkpoint", options=DCGANCheckpointOptions, provides="generator",
        build="evalgrid.priors.dcgan:build", load="evalgrid.priors.dcgan:load",
        preflight="evalgrid.priors.dcgan:preflight_checkpoint", path_options=("path",),
        summary="a DCGAN generator's saved state dict (e.g. GIAS's netG_epoch_199.pth), loaded strictly"),
    PriorEntry(
        name="rog_refiner", options=RefinerOptions, provides="refiner", build="evalgrid.priors.refiner:build",
        train="evalgrid.priors.refiner:train", preflight="evalgrid.priors.refiner:preflight",
        summary="ROG's post-processing U-Net (Yue et al. 2023's denoiser) trained by evalgrid to restore images "
                "from ROG's bicubic x4 representation, on auxiliary data disjoint from the victims"),
)
