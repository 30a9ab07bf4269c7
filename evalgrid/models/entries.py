"""The built-in models and init schemes as catalogue entries: names, summaries and options,
with their builders named by string so that listing them imports no torch (see
:mod:`evalgrid.catalogue`).

A model's ``build(options, info)`` returns an ``nn.Module`` sized to the dataset; the ResNets,
Ju et al.'s DenseNets and torchvision's architectures share one builder per family, told which
architecture to build (their names and summaries are the tables of
:mod:`evalgrid.models.options`). An init's ``build(options)`` returns the
:class:`~evalgrid.models.init.Initializer` that sets the built model's weights, and its
``preflight`` checks the files it reads before anything runs.
"""

from __future__ import annotations

from evalgrid.catalogue.entries import InitEntry, ModelEntry, ref
from evalgrid.models.options import (DENSENETS, RESNETS, ZOO_MODELS, CheckpointOptions, ConvNetOptions,
                                     ConvNetSoKOptions, DenseNetOptions, FullyConnectedOptions, LeNetOptions,
                                     NoOptions, ResNetOptions, WideUniformOptions)

MODEL_ENTRIES = (
    ModelEntry(name="lenet", options=LeNetOptions, build="evalgrid.models.lenet:build",
               summary="DLG's LeNet: sigmoid convolutions, U(-0.5, 0.5) weights"),
    ModelEntry(name="convnet", options=ConvNetOptions, build=ref("evalgrid.models.convnet:build", name="convnet"),
               summary="Geiping et al.'s ConvNet: eight 3x3 conv+BN+ReLU layers, two max-pools, one linear layer"),
    ModelEntry(name="convnet_sok", options=ConvNetSoKOptions,
               build=ref("evalgrid.models.convnet:build", name="convnet_sok"),
               summary="the SoK's base ConvNet (Table 4): Geiping's ConvNet with one dropout layer; "
                       "micro-design options"),
    ModelEntry(name="fc3", options=FullyConnectedOptions, build="evalgrid.models.fc:build",
               summary="FedLeak's fully connected ReLU network (Sec. 3, Table 11): three hidden layers of 1024 "
                       "units (Inverting Gradients' MLP)"),
    *(ModelEntry(name=name, options=ResNetOptions, summary=architecture.summary,
                 build=ref("evalgrid.models.resnet:build", architecture=name))
      for name, architecture in RESNETS.items()),
    *(ModelEntry(name=name, options=DenseNetOptions, summary=architecture.summary,
                 build=ref("evalgrid.models.densenet:build", architecture=name))
      for name, architecture in DENSENETS.items()),
    *(ModelEntry(name=name, options=listed.options, summary=listed.summary,
                 build=ref("evalgrid.models.zoo:build", name=name))
      for name, listed in ZOO_MODELS.items()),
)

INIT_ENTRIES = (
    InitEntry(name="default", options=NoOptions, build="evalgrid.models.init:build_default",
              preflight="evalgrid.models.init:no_preflight",
              summary="the model constructor's own weights (PyTorch's defaults, or its paper's scheme)"),
    InitEntry(name="layer-defaults", options=NoOptions, build="evalgrid.models.init:build_layer_defaults",
              preflight="evalgrid.models.init:no_preflight",
              summary="every layer's own reset_parameters(): PyTorch's per-layer defaults (U(±1/√fan_in) weights)"),
    InitEntry(name="wide-uniform", options=WideUniformOptions, build="evalgrid.models.init:build_wide_uniform",
              preflight="evalgrid.models.init:no_preflight",
              summary="every conv/linear weight and bias ~ U(-a, a), as DLG (a = 0.5)"),
    InitEntry(name="pretrained", options=NoOptions, build="evalgrid.models.init:build_pretrained",
              preflight="evalgrid.models.init:preflight_pretrained",
              summary="torchvision's ImageNet weights from the local torch cache (never downloaded)"),
    InitEntry(name="checkpoint", options=CheckpointOptions, build="evalgrid.models.init:build_checkpoint",
              preflight="evalgrid.models.init:preflight_checkpoint", path_options=("path",),
              summary="a saved state dict, loaded strictly"),
)

ENTRIES = MODEL_ENTRIES + INIT_ENTRIES
