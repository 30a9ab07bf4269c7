"""The options of every built-in model and init, and the torch-free facts of the model
families declared in tables (the ResNets' and DenseNets' block counts, the torchvision zoo's
summaries), apart from the torch code that builds them, so that the catalogue lists and
validates them without importing torch.

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


# fc3 (evalgrid.models.fc) ----------------------------------------------------------------------

@dataclass(frozen=True)
class FullyConnectedOptions:
    """FedLeak's fully connected ReLU network (Sec. 3, App. A, Table 11); the widths are Inverting
    Gradients' ``MLP`` (inversefed/nn/models.py), FedLeak gives none."""

    width: int = option(1024, minimum=1, doc="units of every hidden layer; inversefed's MLP: 1024 (FedLeak gives none)")
    hidden_layers: int = option(3, minimum=1, doc="hidden Linear+ReLU layers before the output layer; FedLeak "
                                                  "Sec. 3: three ('three-layer' in App. A read as the same net)")


# densenet43, densenet53 (evalgrid.models.densenet) ---------------------------------------------

@dataclass(frozen=True)
class DenseNetOptions:
    """The DenseNets of Ju et al. 2022 (the SoK's ref. [43]) that the SoK's Fig. 10 attacks."""

    connections: Literal["all", "shortnet1", "shortnet2"] = option(
        "all", doc="which concatenations each dense block keeps: 'all' (the baseline, every earlier layer), "
                   "'shortnet1' or 'shortnet2' (Ju et al.'s reduced patterns; the SoK's variants-1 and -2)")
    growth_rate: int = option(32, minimum=1, doc="k, the channels each 3×3 convolution adds; the stem has 2k and "
                                                 "the last transition 4k (ShortNet2: 2k). Ju et al.: 32")


@dataclass(frozen=True)
class DenseArchitecture:
    """One DenseNet of Ju et al.'s reference code: what :mod:`evalgrid.models.densenet` builds."""

    blocks: tuple[int, ...]  # 3×3 convolutions in each dense block
    summary: str


# Each is a model of the catalogue under its name, built by evalgrid.models.densenet.build.
DENSENETS: dict[str, DenseArchitecture] = {
    "densenet43": DenseArchitecture((8, 10, 12, 8), "Ju et al.'s DenseNet-43 (SoK Fig. 10): dense blocks of 8, 10, "
                                                    "12, 8 layers; connections 'all' or fewer (shortnet1/2)"),
    "densenet53": DenseArchitecture((10, 12, 16, 8), "Ju et al.'s DenseNet-53 (SoK Fig. 10): dense blocks of 10, "
                                                     "12, 16, 8 layers; connections 'all' or fewer (shortnet1/2)"),
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
