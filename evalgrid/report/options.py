"""What a report can be asked for (kept free of heavy imports: the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_CELLS = 200


@dataclass(frozen=True)
class ReportOptions:
    max_cells: int = DEFAULT_MAX_CELLS  # done cells whose reconstructions are shown, in grid order
