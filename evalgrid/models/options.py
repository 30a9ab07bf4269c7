"""The options of every built-in model and init, and the torch-free facts of the two model
families declared in tables (the ResNets' block counts, the torchvision zoo's summaries), apart
from the torch code that builds them, so that the catalogue lists and validates them without
importing torch.

A cell's id hashes the option fields (names, defaults and values), so they change only with
the components they describe. The implementation modules import their classes from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalgrid.catalogue.entries import NoOptions
from evalgrid.catalogue.options import option

# lenet (evalgrid.models.lenet) -----------------------------------------------------------------

@dataclass(frozen=True)
class LeNetOptions:
    init_range: float = option(0.5, positive=True, maximum=1e6,
                               doc="weights and biases ~ U(-a, a), DLG's a = 0.5 (at most 1e6: beyond, float32 "
                                   "activations overflow within the first layers)")


# convnet, convnet_sok (evalgrid.models.convnet) ------------------------------------------------

@dataclass(frozen=True)
class ConvNetOptions:
    """Geiping's ConvNet64 (the defaults) and the SoK's micro-design switches."""

    width: int = option(64, minimum=1, doc="channels of conv0 (later layers use 2× and 4×); Geiping's ConvNet64")
    bias: bool = option(True, doc="convolutions and the linear layer have a bias")
    relu: bool = option(True, doc="a ReLU after every BatchNorm (false: no activation at all)")
    dropout: float = option(0.0, minimum=0.0, maximum=0.99,
                            doc="probability of the one dropout layer before the linear layer (0: none)")
    max_pool: bool = option(True, doc="the two 3×3 max-pools after conv5 and conv7")
    kernel_size: int = option(3, minimum=1, maximum=7, doc="kernel size of every convolution")
    padding: int = option(1, minimum=0, maximum=3, doc="zero padding of every convolution")


@dataclass(frozen=True)
class ConvNetSoKOptions(ConvNetOptions):
    """The SoK's base ConvNet (Table 4, "None"): Geiping's ConvNet64 plus one dropout layer."""

    dropout: float = option(0.5, minimum=0.0, maximum=0.99,
                            doc="probability of the one dropout layer before the linear layer; "
                                "the SoK does not give it, 0.5 is nn.Dropout's default")


# resnet10, resnet18, resnet34 (evalgrid.models.resnet) -----------------------------------------

@dataclass(frozen=True)
class ResNetOptions:
    stem: Literal["cifar", "imagenet"] = "cifar"
    width: int = option(1, minimum=1, doc="channel multiplier: stages have 64·w, 128·w, 256·w, 512·w "
                                          "channels; FedLeak's ResNet10_x3 is width 3")
    cut_skips: str = option("", doc="comma-separated blocks (e.g. 'layer1.0,layer3.1') or 'all' whose "
                                    "skip connection is cut (SoK Fig. 9); '' keeps every skip")


@dataclass(frozen=True)
class Architecture:
    """One ResNet with basic blocks: what :mod:`evalgrid.models.resnet` builds, and its summary."""

    layers: tuple[int, int, int, int]  # basic blocks in layer1..layer4
    summary: str


# Each is a model of the catalogue under its name, built by evalgrid.models.resnet.build.
RESNETS: dict[str, Architecture] = {
    "resnet10": Architecture((1, 1, 1, 1), "FedLeak's ResNet10: one basic block per stage; width 3/5 = ResNet10_x3/x5"),
    "resnet18": Architecture((2, 2, 2, 2), "ResNet-18 in torchvision's layout; 'cifar' (default) or 'imagenet' stem"),
    "resnet34": Architecture((3, 4, 6, 3), "ResNet-34 in torchvision's layout; 'cifar' (default) or 'imagenet' stem"),
}


# the torchvision zoo (evalgrid.models.zoo) ---------------------------------------------------

@dataclass(frozen=True)
class ViTOptions:
    """ViT-B/16 (Dosovitskiy et al. 2021) by default; the image size is the dataset's resolution."""

    patch_size: int = option(16, minimum=1, doc="side of the square patches; must divide the resolution")
    num_layers: int = option(12, minimum=1, doc="transformer encoder layers (ViT-B: 12)")
    num_heads: int = option(12, minimum=1, doc="attention heads; must divide hidden_dim (ViT-B: 12)")
    hidden_dim: int = option(768, minimum=1, doc="token width (ViT-B: 768)")
    mlp_dim: int = option(3072, minimum=1, doc="hidden width of each MLP block (ViT-B: 3072)")
    zero_head: bool = option(True, doc="torchvision's zero-initialised classification head; at such a head "
                                       "no gradient reaches the lower layers. false: nn.Linear's default init")


@dataclass(frozen=True)
class Listing:
    """What the catalogue says of one architecture of the zoo; how torchvision builds it is
    :data:`evalgrid.models.zoo.ZOO`'s row of the same name."""

    summary: str
    options: type = NoOptions


ZOO_MODELS: dict[str, Listing] = {
    "densenet121": Listing("torchvision's DenseNet-121, random init (SoK, FedLeak)"),
    "mobilenet_v2": Listing("torchvision's MobileNetV2, random init (FedLeak)"),
    "vgg11": Listing("torchvision's VGG-11 (no BatchNorm), random init (SoK)"),
    "vgg16": Listing("torchvision's VGG-16 (no BatchNorm), random init (SoK)"),
    "vgg19": Listing("torchvision's VGG-19 (no BatchNorm), random init (SoK)"),
    "googlenet": Listing("torchvision's GoogLeNet without auxiliary heads, random init (SoK Table 3)"),
    "inception_v3": Listing("torchvision's Inception-v3 without auxiliary head, random init (SoK Table 3)"),
    "resnet50": Listing("torchvision's ResNet-50 (ImageNet stem), random init (SoK)"),
    "resnet152": Listing("torchvision's ResNet-152 (ImageNet stem), random init (SoK)"),
    "vit": Listing("torchvision's VisionTransformer, ViT-B/16 by default, image size = resolution (FedLeak)",
                   ViTOptions),
    "swin": Listing("torchvision's Swin-T, random init (SoK Sec. 6)"),
}


# inits (evalgrid.models.init) ------------------------------------------------------------------

@dataclass(frozen=True)
class WideUniformOptions:
    a: float = option(0.5, positive=True, doc="weights and biases ~ U(-a, a); DLG's a = 0.5")


@dataclass(frozen=True)
class CheckpointOptions:
    path: str = option("", doc="a saved state dict (plain, or under 'state_dict') to load strictly; required")
