"""Improved DLG (Zhao et al. 2020): DLG's L-BFGS optimisation of the data alone, with the
labels read off the last layer's gradient (the 'idlg' rule in :mod:`.labels`) or known.

Preset from the authors' reference code: L-BFGS lr 1.0, 300 iterations, dummy data N(0, 1).
That code also stops once D < 1e-6; we run ``iterations`` steps (after convergence an L-BFGS
step costs one evaluation) unless ``early_stop_window`` is set (DLG's rule, :mod:`.stopping`).
"""

from __future__ import annotations

from dataclasses import dataclass

from evalgrid.attacks.base import Init
from evalgrid.attacks.dlg import DLG, DLGOptions
from evalgrid.attacks.stopping import tolerance_option, window_option
from evalgrid.options import option, options_dict


@dataclass(frozen=True)
class IDLGOptions:
    iterations: int = option(300, minimum=1, doc="outer L-BFGS steps (iDLG's code: 300)")
    lr: float = option(1.0, positive=True, doc="L-BFGS step size (iDLG's code: 1.0)")
    lbfgs_max_iter: int = option(20, minimum=1, doc="L-BFGS iterations per step (torch's default)")
    init: Init = option("randn", doc="dummy data: 'randn' N(0, 1) in input space, 'rand' uniform pixels")
    early_stop_window: int = window_option("gradient distance D (at the start of an L-BFGS step)")
    early_stop_tolerance: float = tolerance_option()


def build(options: IDLGOptions) -> DLG:
    return DLG(DLGOptions(**options_dict(options), label_inference="idlg"))
