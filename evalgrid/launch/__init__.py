"""Launching a grid: the checks before anything is dispatched (``preflight``), the run itself
(``runner``: resume, dispatch to an executor, collect), its progress line, and what produced
its results (``provenance``)."""
