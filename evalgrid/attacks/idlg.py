"""Improved DLG (Zhao et al. 2020): DLG's L-BFGS optimisation of the data alone, with the
labels read off the last layer's gradient (the 'idlg' rule in :mod:`.labels`) or known.

Preset from the authors' reference code: L-BFGS lr 1.0, 300 iterations, dummy data N(0, 1).
That code also stops once D < 1e-6; we run ``iterations`` steps (after convergence an L-BFGS
step costs one evaluation) unless ``early_stop_window`` is set (DLG's rule, :mod:`.stopping`).
"""

from __future__ import annotations

from evalgrid.attacks.dlg import DLG
from evalgrid.attacks.options import DLGOptions, IDLGOptions
from evalgrid.catalogue.options import options_dict


def build(options: IDLGOptions) -> DLG:
    return DLG(DLGOptions(**options_dict(options), label_inference="idlg"))
