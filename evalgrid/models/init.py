"""How the global model's weights are set before the client computes its update: the grid
factor ``init``. FedLeak (Table 7) compares random with ImageNet-pretrained initialisation, and
lists "wide uniform" initialisation (DLG's U(-0.5, 0.5)) as a factor that helps attacks.

Each scheme is a catalogue entry (:mod:`evalgrid.models.entries`) whose ``build`` and
``preflight`` are this module's ``build_*`` and ``preflight_*`` functions.
``INITS[name].build(options)`` gives an :class:`Initializer`, whose ``apply(model, model_name,
model_options)`` changes the freshly built model in place, drawing randomness only from
torch's global RNG (which the cell seeds). ``INITS[name].preflight(options, model_name,
model_options, network)`` raises a UserError before anything runs when a file is missing, does
not fit ``network`` (the model as built for the cell's data, on any device, e.g. meta) or the
model has no such weights. Files are read, never downloaded (see :mod:`evalgrid.models.weights`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from evalgrid.errors import MissingInput, UserError
from evalgrid.models.options import CheckpointOptions, NoOptions, ViTOptions, WideUniformOptions
from evalgrid.models.weights import FETCH_COMMAND, WEIGHTS, weights_path

MIN_LOADED_SHARE = 0.9  # of the model's non-classifier tensors that pretrained weights must fill
_SHOWN_KEYS = 5


class Initializer(Protocol):
    def apply(self, model: nn.Module, model_name: str, model_options: Any) -> None:
        """Set ``model``'s weights in place."""


# default ------------------------------------------------------------------------------------

class ConstructorInit:
    """Keep the weights the model's constructor drew: PyTorch's defaults, or the defining
    paper's scheme (DLG's U(-0.5, 0.5) LeNet, torchvision's schemes for its models)."""

    def apply(self, model: nn.Module, model_name: str, model_options: Any) -> None:
        pass


def build_default(options: NoOptions) -> ConstructorInit:
    return ConstructorInit()


def no_preflight(options: Any, model_name: str, model_options: Any, network: nn.Module | None = None) -> None:
    """The schemes that read no file have nothing to check."""


# layer-defaults -----------------------------------------------------------------------------

class LayerDefaults:
    """Every layer's own ``reset_parameters()``, in module order: PyTorch's per-layer defaults
    (conv and linear weights ~ U(±1/√fan_in), i.e. kaiming-uniform with a = √5, biases alike;
    BatchNorm weight 1, bias 0), whatever scheme the model's constructor applied on top. One
    reading of the SoK's "initialized with PyTorch's default initialization" (App. B.I); the
    other is torchvision's constructor scheme, which ``default`` keeps."""

    def apply(self, model: nn.Module, model_name: str, model_options: Any) -> None:
        for module in model.modules():
            if module is not model and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()


def build_layer_defaults(options: NoOptions) -> LayerDefaults:
    return LayerDefaults()


# wide-uniform -------------------------------------------------------------------------------

_WEIGHTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                    nn.ConvTranspose3d)
# nn.MultiheadAttention keeps its query/key/value projections as packed parameters rather than
# Linear modules; they are linear layers all the same (its output projection is a Linear).
_ATTENTION_PROJECTIONS = ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight")


@dataclass(frozen=True)
class WideUniform:
    """Every weight and bias of every convolution and linear layer (attention projections
    included) ~ U(-a, a), as DLG initialises its LeNet. Normalisation affines, embeddings,
    class tokens and position tables keep the constructor's values."""

    a: float

    def apply(self, model: nn.Module, model_name: str, model_options: Any) -> None:
        for module in model.modules():
            names: tuple[str, ...] = ()
            if isinstance(module, _WEIGHTED_LAYERS):
                names = ("weight", "bias")
            elif isinstance(module, nn.MultiheadAttention):
                names = _ATTENTION_PROJECTIONS
            for name in names:
                parameter = getattr(module, name, None)
                if parameter is not None:
                    nn.init.uniform_(parameter, -self.a, self.a)


def build_wide_uniform(options: WideUniformOptions) -> WideUniform:
    return WideUniform(options.a)


# pretrained ---------------------------------------------------------------------------------

def _unchanged(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    return state


def _nothing(model: nn.Module) -> None:
    pass


def _any_options(model_options: Any) -> str | None:
    return None


def _densenet_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    # torchvision's DenseNet files predate its module names: 'denselayer1.norm.1.weight' is now
    # 'denselayer1.norm1.weight' (likewise relu.N and conv.N).
    layer_key = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")
    return {layer_key.sub(r"\1\2.", key): value for key, value in state.items()}


def _vit_positions(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    # Position embeddings are learnt for 224×224 (14×14 patches); other resolutions get them
    # resized bicubically, as torchvision does when fine-tuning at another resolution.
    from torchvision.models.vision_transformer import interpolate_embeddings

    return dict(interpolate_embeddings(model.image_size, model.patch_size, dict(state)))


def _rgb_inputs_like_torchvision(model: nn.Module) -> None:
    # torchvision's pretrained GoogLeNet and Inception-v3 convert ImageNet-normalised input to
    # the [-1, 1] scaling the original weights were trained on; it reads three channels.
    if model.transform_input is False and _first_conv_channels(model) == 3:
        model.transform_input = True


def _first_conv_channels(model: nn.Module) -> int:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


def _width_one(model_options: Any) -> str | None:
    if model_options.width != 1:
        return f"ImageNet weights exist for width = 1 only, not width = {model_options.width}"
    return None


def _vit_b_16(model_options: Any) -> str | None:
    reference = ViTOptions()
    sizes = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")
    changed = [f"{name} = {getattr(model_options, name)}" for name in sizes
               if getattr(model_options, name) != getattr(reference, name)]
    if changed:
        return (f"the ImageNet weights are ViT-B/16's (patch_size 16, 12 layers, 12 heads, hidden_dim 768, "
                f"mlp_dim 3072), not {', '.join(changed)}")
    return None


@dataclass(frozen=True)
class PretrainedWeights:
    """A model's torchvision ImageNet weights and how to fit them to our variant of the model."""

    weights: str  # a name in evalgrid.models.weights.WEIGHTS
    classifier: str  # prefix of the final layer's state keys: never loaded (its classes differ)
    compatible: Callable[[Any], str | None] = _any_options  # why these model options rule them out
    adapt: Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]] = _unchanged
    after_load: Callable[[nn.Module], None] = _nothing


PRETRAINED: dict[str, PretrainedWeights] = {
    "resnet18": PretrainedWeights("resnet18", "fc.", _width_one),
    "resnet34": PretrainedWeights("resnet34", "fc.", _width_one),
    "resnet50": PretrainedWeights("resnet50", "fc."),
    "resnet152": PretrainedWeights("resnet152", "fc."),
    "densenet121": PretrainedWeights("densenet121", "classifier.", adapt=_densenet_keys),
    "mobilenet_v2": PretrainedWeights("mobilenet_v2", "classifier.1."),
    "vgg11": PretrainedWeights("vgg11", "classifier.6."),
    "vgg16": PretrainedWeights("vgg16", "classifier.6."),
    "vgg19": PretrainedWeights("vgg19", "classifier.6."),
    "googlenet": PretrainedWeights("googlenet", "fc.", after_load=_rgb_inputs_like_torchvision),
    "inception_v3": PretrainedWeights("inception_v3", "fc.", after_load=_rgb_inputs_like_torchvision),
    "vit": PretrainedWeights("vit_b_16", "heads.head.", _vit_b_16, adapt=_vit_positions),
    "swin": PretrainedWeights("swin_t", "head."),
}


def _pretrained_spec(model_name: str, model_options: Any) -> PretrainedWeights:
    spec = PRETRAINED.get(model_name)
    if spec is None:
        raise UserError(f"init 'pretrained': model {model_name!r} has no ImageNet weights; models that have them: "
                        f"{', '.join(PRETRAINED)}. Use init 'default' or 'checkpoint' for {model_name!r}.")
    problem = spec.compatible(model_options)
    if problem:
        raise UserError(f"init 'pretrained' for model {model_name!r}: {problem}.")
    return spec


def _require_file(spec: PretrainedWeights, model_name: str) -> Path:
    path = weights_path(spec.weights)
    if not path.is_file():
        raise MissingInput(
            f"init 'pretrained' for model {model_name!r} needs {path} (torchvision's ImageNet weights, from "
            f"{WEIGHTS[spec.weights].url}), and evalgrid never downloads during a run. Run "
            f"`{FETCH_COMMAND} {spec.weights}` on a machine with internet access and the same TORCH_HOME, "
            f"or copy the file to that path.", path)
    return path


def preflight_pretrained(options: NoOptions, model_name: str, model_options: Any,
                         network: nn.Module | None = None) -> None:
    _require_file(_pretrained_spec(model_name, model_options), model_name)


def _shown(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN_KEYS]) + (f" (and {len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else "")


class Pretrained:
    """torchvision's ImageNet weights from torch's cache: every tensor whose name and shape
    match, except the classifier's; an adapted first convolution (other channels, the 3×3 CIFAR
    stem) keeps its random weights. Fewer than 90% of the other tensors filled is an error."""

    def apply(self, model: nn.Module, model_name: str, model_options: Any) -> None:
        spec = _pretrained_spec(model_name, model_options)
        path = _require_file(spec, model_name)
        state = spec.adapt(torch.load(path, weights_only=True, map_location="cpu"), model)
        own = {key: value for key, value in model.state_dict().items()
               if not key.startswith(spec.classifier) and not key.endswith("num_batches_tracked")}
        loaded = {key: state[key] for key, value in own.items()
                  if key in state and state[key].shape == value.shape}
        if len(loaded) < MIN_LOADED_SHARE * len(own):
            unfilled = [key for key in own if key not in loaded]
            raise UserError(f"init 'pretrained': {path} fills only {len(loaded)} of the {len(own)} tensors of model "
                            f"{model_name!r} (at least {MIN_LOADED_SHARE:.0%} needed); not filled: {_shown(unfilled)}.")
        model.load_state_dict(loaded, strict=False)
        spec.after_load(model)


def build_pretrained(options: NoOptions) -> Pretrained:
    return Pretrained()


# checkpoint ---------------------------------------------------------------------------------

def _checkpoint_path(options: CheckpointOptions) -> Path:
    if not options.path:
        raise UserError("init 'checkpoint' needs the option path: the file of a saved state dict, "
                        "e.g. init = [{ name = \"checkpoint\", path = \"runs/model.pt\" }].")
    return Path(options.path)


def preflight_checkpoint(options: CheckpointOptions, model_name: str, model_options: Any,
                         network: nn.Module | None = None) -> None:
    """The file exists; given the network, it is a state dict whose keys and shapes are the network's."""
    path = _checkpoint_path(options)
    if network is None:
        _require_checkpoint_file(path)
    else:
        fitting_state(path, network, model_name)


def _require_checkpoint_file(path: Path, who: str = "init 'checkpoint'") -> None:
    if path.is_dir():
        raise UserError(f"{who}: {path} is a directory, not a file.")
    if not path.is_file():
        raise MissingInput(f"{who}: the file {path} does not exist.", path)


def fitting_state(path: Path, model: nn.Module, model_name: str,
                  who: str = "init 'checkpoint'") -> Mapping[str, torch.Tensor]:
    """The state dict saved in ``path`` (plain or under 'state_dict'), read with
    ``weights_only=True``, after checking that every key and shape is ``model``'s. ``who``
    (the component reading it) and ``model_name`` are named in the errors."""
    _require_checkpoint_file(path, who)
    try:
        with warnings.catch_warnings():  # a damaged file's odd protocol number is reported below, not warned
            warnings.simplefilter("ignore")
            state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - torch.load raises many types on foreign or damaged files
        raise UserError(f"{who}: cannot read {path} as a torch state dict "
                        f"({type(error).__name__}: {_first_line(error)}).") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not (isinstance(state, Mapping) and all(isinstance(key, str) and isinstance(value, torch.Tensor)
                                               for key, value in state.items())):
        raise UserError(f"{who}: {path} holds no state dict (a mapping of names to tensors, "
                        f"plain or under 'state_dict').")
    expected = model.state_dict()
    problems = [
        ("missing keys", [key for key in expected if key not in state]),
        ("unexpected keys", [key for key in state if key not in expected]),
        ("shape mismatches", [f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
                              for key, value in expected.items()
                              if key in state and state[key].shape != value.shape]),
        ("non-floating tensors", [key for key, value in expected.items() if key in state
                                  and value.is_floating_point() and not state[key].is_floating_point()]),
    ]
    found = [f"{what}: {_shown(keys)}" for what, keys in problems if keys]
    if found:
        raise UserError(f"{who}: {path} does not fit model {model_name!r}: {'; '.join(found)}.")
    return state


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "no detail"


@dataclass(frozen=True)
class FromCheckpoint:
    """A state dict saved with ``torch.save(model.state_dict(), path)`` (or ``{"state_dict": ...}``),
    loaded strictly: every key and shape must be the model's."""

    path: Path

    def apply(self, model: nn.Module, model_name: str, model_options: Any) -> None:
        model.load_state_dict(fitting_state(self.path, model, model_name), strict=True)


def build_checkpoint(options: CheckpointOptions) -> FromCheckpoint:
    return FromCheckpoint(_checkpoint_path(options))
