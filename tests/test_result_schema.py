"""The result schema: one column per factor and per metric, checked on every write."""

from __future__ import annotations

import pytest

from evalgrid.grid.cell import FACTOR_NAMES
from evalgrid.catalogue import METRICS
from evalgrid.store.layout import OutputDir
from evalgrid.store.results import empty_row, metric_columns, per_sample_metrics, result_schema, write_result


def test_every_registered_metric_has_its_columns():
    assert set(metric_columns()) == set(METRICS.names())
    assert set(per_sample_metrics()) == {name for name in METRICS.names() if METRICS[name].per_sample}
    for name in per_sample_metrics():
        assert f"{name}_per_sample" in result_schema().names


def test_every_factor_has_a_column():
    assert set(FACTOR_NAMES) <= set(result_schema().names)


def test_a_row_with_an_unknown_column_is_refused(tmp_path):
    row = {**empty_row(), "cell_id": "x", "status": "done", "surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        write_result(OutputDir(tmp_path), row)
    assert not (tmp_path / "cells").exists() or not list((tmp_path / "cells").iterdir())


def test_a_row_with_an_unknown_status_is_refused(tmp_path):
    with pytest.raises(ValueError, match="status"):
        write_result(OutputDir(tmp_path), {**empty_row(), "cell_id": "x", "status": "maybe"})


def test_a_done_result_replaces_the_cells_earlier_failure(tmp_path):
    out = OutputDir(tmp_path)
    write_result(out, {**empty_row(), "cell_id": "abc", "status": "failed", "error_type": "E"})
    assert out.failed_ids() == {"abc"}
    write_result(out, {**empty_row(), "cell_id": "abc", "status": "done"})
    assert out.done_ids() == {"abc"} and out.failed_ids() == set()
    assert not out.failed_result("abc").exists()
