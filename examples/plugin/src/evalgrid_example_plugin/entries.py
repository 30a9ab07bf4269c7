"""The catalogue entries of the plugin, named by the ``evalgrid.components`` entry point in
pyproject.toml. Torch-free: each ``build`` is a string, imported only when a cell runs."""

from __future__ import annotations

from evalgrid.catalogue import AttackEntry, DefenseEntry, ModelEntry
from evalgrid_example_plugin.options import LaplaceOptions, LinearLeakOptions, MLPOptions

ENTRIES = (
    AttackEntry(
        name="linear_leak", options=LinearLeakOptions, build="evalgrid_example_plugin.attack:build",
        preflight="evalgrid_example_plugin.attack:preflight",
        summary="analytic leak through a first Linear layer with bias (Phong et al. 2018): x = dL/dW_i / dL/db_i; "
                "exact for one sample, a mix of the batch for B > 1"),
    DefenseEntry(
        name="laplace", options=LaplaceOptions, build="evalgrid_example_plugin.defense:build",
        summary="Laplace perturbation: add i.i.d. Laplace(0, scale) noise to every coordinate of the update"),
    ModelEntry(
        name="mlp", options=MLPOptions, build="evalgrid_example_plugin.model:build",
        summary="flatten, Linear(C*H*W, hidden) with bias, ReLU, Linear(hidden, classes)"),
)
