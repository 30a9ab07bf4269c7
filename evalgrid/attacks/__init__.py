"""Attack registry. ``build(options)`` returns an attack whose
``reconstruct(view: ServerView, generator: torch.Generator) -> Reconstruction`` sees only
what the threat model grants; its images are in the model's (normalised) input space."""

from __future__ import annotations

from evalgrid.attacks import dlg, fedleak, gradinversion, idlg, inverting_gradients
from evalgrid.attacks.base import NonFiniteLoss
from evalgrid.registry import Component, Registry

ATTACKS: Registry[Component] = Registry("attack")
ATTACKS.register("dlg", Component(
    "dlg", dlg.DLGOptions, dlg.build,
    "Deep Leakage from Gradients (Zhu et al. 2019): L-BFGS on the squared L2 gradient distance, joint labels"))
ATTACKS.register("idlg", Component(
    "idlg", idlg.IDLGOptions, idlg.build,
    "Improved DLG (Zhao et al. 2020): DLG's optimisation with labels read off the last layer's gradient"))
ATTACKS.register("ig", Component(
    "ig", inverting_gradients.InvertingGradientsOptions, inverting_gradients.build,
    "Inverting Gradients (Geiping et al. 2020): signed Adam on cosine distance + TV, boxed, with restarts"))
ATTACKS.register("gradinversion", Component(
    "gradinversion", gradinversion.GradInversionOptions, gradinversion.build,
    "GradInversion (Yin et al. 2021): per-layer L2 gradient matching + shared-BN-statistics, TV and l2 priors "
    "(breaching's weights), restarts (the best one returned)"))
ATTACKS.register("fedleak", Component(
    "fedleak", fedleak.FedLeakOptions, fedleak.build,
    "FedLeak (Fan et al. 2025): Adam on L1 + cosine over the top-50% update elements, TV, activation L1, "
    "look-ahead gradient blending"))

__all__ = ["ATTACKS", "NonFiniteLoss"]
