"""The options of the plugin's components: frozen dataclasses whose defaults are the presets.
Torch-free, like :mod:`.entries`: evalgrid reads them to validate a grid and to list them."""

from __future__ import annotations

from dataclasses import dataclass

from evalgrid.attacks.options import label_rule_option
from evalgrid.catalogue.options import option


@dataclass(frozen=True)
class LinearLeakOptions:
    label_inference: str = label_rule_option(
        "idlg", doc="label rule when the labels are not known (the images do not depend on the labels)")


@dataclass(frozen=True)
class LaplaceOptions:
    scale: float = option(1e-3, positive=True,
                          doc="b, the Laplace scale in gradient units (standard deviation b·√2)")


@dataclass(frozen=True)
class MLPOptions:
    hidden: int = option(256, minimum=1, doc="width of the hidden layer")
