"""Architectures built by torchvision, randomly initialised by their own constructors
(``weights=None``; nothing is downloaded), with the dataset's number of classes.

These are the models of the SoK (Du et al. 2025: VGG-11/16/19, ResNet-50/152, DenseNet-121,
GoogLeNet, Inception-v3, Swin) and of FedLeak (DenseNet-121, MobileNetV2, ViT). Each is one
row of :data:`ZOO`: how torchvision builds it here, its name, summary and options in
:data:`evalgrid.models.options.ZOO_MODELS` (torch-free, which the catalogue lists).

Data with other than 3 channels: the first convolution (``ZooModel.stem``, a dotted module
name) is replaced by one of the same geometry that reads ``info.channels`` channels,
initialised the way the architecture initialises it (``ZooModel.stem_init``). With RGB data
the model is exactly torchvision's, so a seed gives torchvision's weights.

GoogLeNet and Inception-v3 are built without auxiliary classifiers (``aux_logits=False``)
and with torchvision's original truncated-normal initialisation (``init_weights=True``).
Train-mode randomness is torchvision's: dropout before the classifier (GoogLeNet 0.2,
Inception-v3 0.5, VGG 0.5 twice, MobileNetV2 0.2) and Swin-T's stochastic depth (0.2).

Minimum resolutions (smallest square side for a forward pass of two images in train mode,
found by running each model on the meta device; 1-channel data the same):
DenseNet-121 29, VGG 32 (five max-pools), GoogLeNet 15, Inception-v3 75, Swin-T 4, ViT its
patch size (which must divide the side); MobileNetV2 and ResNet-50/152 run at any size.
A single image in train mode needs more, since BatchNorm then needs a final feature map of at
least 2×2: DenseNet-121 61, GoogLeNet 47, Inception-v3 107, MobileNetV2 and ResNet-50/152 33
(:func:`evalgrid.models.fitting.check_batch_fits` tests a given batch size).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from evalgrid.data.base import DatasetInfo
from evalgrid.errors import UserError
from evalgrid.models.options import ZOO_MODELS, NoOptions, ViTOptions


def _kaiming_fan_out(conv: nn.Conv2d) -> None:  # ResNet, VGG, MobileNetV2
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _kaiming_fan_in(conv: nn.Conv2d) -> None:  # DenseNet
    nn.init.kaiming_normal_(conv.weight)


def _truncated_normal(std: float) -> Callable[[nn.Conv2d], None]:  # GoogLeNet 0.01, Inception-v3 0.1
    return lambda conv: nn.init.trunc_normal_(conv.weight, mean=0.0, std=std, a=-2, b=2)


def _vit_patch_embedding(conv: nn.Conv2d) -> None:
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    nn.init.trunc_normal_(conv.weight, std=math.sqrt(1 / fan_in))
    nn.init.zeros_(conv.bias)


def _pytorch_default(conv: nn.Conv2d) -> None:  # Swin leaves its patch embedding to nn.Conv2d
    pass


def _torchvision(constructor: str, **kwargs: Any) -> Callable[[Any, DatasetInfo], nn.Module]:
    def make(options: Any, info: DatasetInfo) -> nn.Module:
        from torchvision import models  # deferred: importing torchvision takes about a second

        return getattr(models, constructor)(weights=None, num_classes=info.num_classes, **kwargs)
    return make


def _vision_transformer(options: ViTOptions, info: DatasetInfo) -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    if options.hidden_dim % options.num_heads:
        raise UserError(f"model 'vit': num_heads = {options.num_heads} must divide hidden_dim = {options.hidden_dim}.")
    model = VisionTransformer(image_size=info.resolution, patch_size=options.patch_size,
                              num_layers=options.num_layers, num_heads=options.num_heads,
                              hidden_dim=options.hidden_dim, mlp_dim=options.mlp_dim,
                              num_classes=info.num_classes)
    if not options.zero_head:
        model.heads.head.reset_parameters()
    return model


def _vit_fits(options: ViTOptions, info: DatasetInfo) -> str | None:
    if info.resolution % options.patch_size:
        return (f"model 'vit' needs a resolution that its patch_size = {options.patch_size} divides; this "
                f"dataset's images are {info.resolution}×{info.resolution}: set the grid factor resolution to a "
                f"multiple of {options.patch_size}, or change patch_size.")
    return None


@dataclass(frozen=True)
class ZooModel:
    """How torchvision builds one architecture, with the summary and options it is listed with."""

    make: Callable[[Any, DatasetInfo], nn.Module]
    stem: str  # dotted name of the first convolution, replaced for non-RGB data
    stem_init: Callable[[nn.Conv2d], None]
    min_resolution: Callable[[Any], int]
    fits: Callable[[Any, DatasetInfo], str | None] = lambda options, info: None  # other constraints
    summary: str = ""  # set from ZOO_MODELS
    options: type = NoOptions  # set from ZOO_MODELS


def _at_least(side: int) -> Callable[[Any], int]:
    return lambda options: side


_BUILDS: dict[str, ZooModel] = {  # one per name of ZOO_MODELS
    "densenet121": ZooModel(_torchvision("densenet121"), "features.conv0", _kaiming_fan_in, _at_least(29)),
    "mobilenet_v2": ZooModel(_torchvision("mobilenet_v2"), "features.0.0", _kaiming_fan_out, _at_least(1)),
    "vgg11": ZooModel(_torchvision("vgg11"), "features.0", _kaiming_fan_out, _at_least(32)),
    "vgg16": ZooModel(_torchvision("vgg16"), "features.0", _kaiming_fan_out, _at_least(32)),
    "vgg19": ZooModel(_torchvision("vgg19"), "features.0", _kaiming_fan_out, _at_least(32)),
    "googlenet": ZooModel(_torchvision("googlenet", aux_logits=False, init_weights=True), "conv1.conv",
                          _truncated_normal(0.01), _at_least(15)),
    "inception_v3": ZooModel(_torchvision("inception_v3", aux_logits=False, init_weights=True),
                             "Conv2d_1a_3x3.conv", _truncated_normal(0.1), _at_least(75)),
    "resnet50": ZooModel(_torchvision("resnet50"), "conv1", _kaiming_fan_out, _at_least(1)),
    "resnet152": ZooModel(_torchvision("resnet152"), "conv1", _kaiming_fan_out, _at_least(1)),
    "vit": ZooModel(_vision_transformer, "conv_proj", _vit_patch_embedding, lambda options: options.patch_size,
                    _vit_fits),
    "swin": ZooModel(_torchvision("swin_t"), "features.0.0", _pytorch_default, _at_least(4)),
}
ZOO: dict[str, ZooModel] = {name: replace(_BUILDS[name], summary=listed.summary, options=listed.options)
                            for name, listed in ZOO_MODELS.items()}


def _replace_stem(model: nn.Module, path: str, channels: int, init: Callable[[nn.Conv2d], None]) -> None:
    parent_name, _, child_name = path.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = parent.get_submodule(child_name)
    new = nn.Conv2d(channels, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
                    dilation=old.dilation, groups=old.groups, bias=old.bias is not None,
                    padding_mode=old.padding_mode)
    init(new)
    setattr(parent, child_name, new)


def build(options: Any, info: DatasetInfo, name: str) -> nn.Module:
    """The architecture ``name`` (a key of :data:`ZOO`) for ``info``'s images and classes."""
    spec = ZOO[name]
    minimum = spec.min_resolution(options)
    if info.resolution < minimum:
        raise UserError(f"model {name!r} needs images of at least {minimum}×{minimum} pixels; this dataset's are "
                        f"{info.resolution}×{info.resolution}: set the grid factor resolution = [{minimum}] or more.")
    problem = spec.fits(options, info)
    if problem:
        raise UserError(problem)
    model = spec.make(options, info)
    if info.channels != 3:
        _replace_stem(model, spec.stem, info.channels, spec.stem_init)
    return model
