"""curve.csv, a cell's convergence record (:mod:`evalgrid.evaluation.convergence`) as an
artifact: written by the pipeline, read back, checked, by :func:`evalgrid.store.load.load_curves`.

One row per point, sorted by trial then iteration: ``trial`` (0-based), ``iteration`` (the
trial's optimiser steps so far), ``loss`` (the attack's objective in its own units, the
reconstruction's ``final_loss`` at that step), then one column per metric whose entry is
``along_curve`` (built in: ``psnr``, in dB, the cell's own scoring and sample matching), empty
when the cell does not measure it. Floats are written in Python's ``repr``, which reads back to
the same number. A file may lack a metric column (written before that metric was registered);
``load_curves`` gives NaN there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

POINT_COLUMNS = ("trial", "iteration", "loss")  # every curve.csv starts with these


def curve_metrics() -> tuple[str, ...]:
    """The metrics a convergence record measures at each point (their entries' ``along_curve``)."""
    from evalgrid.catalogue import METRICS

    return tuple(name for name in METRICS.names() if METRICS[name].along_curve)


def curve_columns() -> tuple[str, ...]:
    """The columns curve.csv is written with: the point's, then each curve metric's."""
    return (*POINT_COLUMNS, *curve_metrics())
MAX_CURVE_BYTES = 256 * 2**20  # far above any real record (100 points per trial: a few kB per trial)
_INTEGER = r"[0-9]{1,18}"  # fits int64
_FLOAT = r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|nan|inf)"  # what repr(float) writes


class CurveUnreadable(ValueError):
    """A curve.csv that is not what :func:`curve_csv` writes; the message says why."""


def curve_csv(points: Iterable[Mapping[str, Any]]) -> bytes:
    """The points (dicts with trial, iteration, loss and the curve metrics measured) as curve.csv."""
    metrics = curve_metrics()
    lines = [",".join((*POINT_COLUMNS, *metrics))]
    for point in sorted(points, key=lambda p: (int(p["trial"]), int(p["iteration"]))):
        values = ["" if point.get(name) is None else repr(float(point[name])) for name in metrics]
        lines.append(",".join([str(int(point["trial"])), str(int(point["iteration"])), repr(float(point["loss"])),
                               *values]))
    return ("\n".join(lines) + "\n").encode("ascii")


def read_curve(path: Path) -> pd.DataFrame:
    """curve.csv as a DataFrame (trial and iteration int64, loss and the metrics float64, NaN
    where a metric is empty). Raises :class:`CurveUnreadable` for anything else: not a regular file, too
    large, not text, other columns, or a value that is not a number of its column's kind."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CurveUnreadable("not a regular file")
        if info.st_size > MAX_CURVE_BYTES:
            raise CurveUnreadable(f"{info.st_size} bytes, more than a curve holds")
        text = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="ascii", engine="c")
    except CurveUnreadable:
        raise
    except (ValueError, OSError) as error:  # pandas' parser errors and UnicodeDecodeError are ValueErrors
        raise CurveUnreadable(f"cannot be read as CSV ({type(error).__name__})") from None
    text = text.fillna("")  # a short row's missing fields
    metrics = tuple(text.columns[len(POINT_COLUMNS):])
    known = curve_metrics()
    if (tuple(text.columns[:len(POINT_COLUMNS)]) != POINT_COLUMNS or len(set(metrics)) != len(metrics)
            or not set(metrics) <= set(known)):
        raise CurveUnreadable(f"its columns are not {', '.join(POINT_COLUMNS)} then some of {', '.join(known)}")
    frame = pd.DataFrame(index=range(len(text)))
    for name in ("trial", "iteration"):
        if not text[name].str.fullmatch(_INTEGER).all():
            raise CurveUnreadable(f"column {name} holds something other than non-negative integers")
        frame[name] = text[name].astype("int64")
    for name, empty_allowed in (("loss", False), *((metric, True) for metric in metrics)):
        values = text[name]
        if empty_allowed:
            values = values.replace("", "nan")
        if not values.str.fullmatch(_FLOAT).all():
            raise CurveUnreadable(f"column {name} holds something other than numbers")
        frame[name] = values.astype("float64")
    return frame
