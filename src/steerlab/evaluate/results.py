"""Deprecated import path: use :mod:`steerlab.stats.rows` and :mod:`steerlab.stats.intervals`.

Sweep rows and their confidence intervals are pure statistics and live in :mod:`steerlab.stats`;
this module re-exports them so that ``from steerlab.evaluate.results import SweepRow`` keeps
working.
"""

from steerlab.stats.intervals import mean_ci
from steerlab.stats.rows import KINDS, SweepRow, row_dicts, series, sorted_rows

__all__ = ["KINDS", "SweepRow", "mean_ci", "row_dicts", "series", "sorted_rows"]
