"""Pure statistics of steering results: intervals, sweep rows and the trade-off fits.

Numbers and result rows in, numbers and frozen dataclasses out: nothing here loads or runs a
model (numpy and scipy only), so :mod:`steerlab.report` and :mod:`steerlab.evaluate` can both
build on it.

* :mod:`~steerlab.stats.intervals`: mean and bootstrap confidence intervals, AUROC.
* :mod:`~steerlab.stats.rows`: :class:`SweepRow`, the measured point of a sweep.
* :mod:`~steerlab.stats.fit_results`: the typed fits (:class:`BehaviorFit`, ...).
* :mod:`~steerlab.stats.fitting`: the fitting functions (:func:`fit_tradeoff`, ...).
"""

from steerlab.stats.fit_results import (
    BehaviorFit,
    CostEffectiveRange,
    FitError,
    HelpfulnessFit,
    PolyComparison,
    TradeoffFit,
    behavior_curve,
    helpfulness_curve,
)
from steerlab.stats.fitting import (
    compare_linear_quadratic,
    cost_effective_range,
    fit_behavior,
    fit_helpfulness,
    fit_tradeoff,
)
from steerlab.stats.intervals import (
    Z_95,
    auroc,
    auroc_of_rows,
    bootstrap_ci,
    mean_ci,
    pooled_perplexity,
)
from steerlab.stats.rows import KINDS, SweepRow, row_dicts, series, sorted_rows

__all__ = [
    "KINDS",
    "Z_95",
    "BehaviorFit",
    "CostEffectiveRange",
    "FitError",
    "HelpfulnessFit",
    "PolyComparison",
    "SweepRow",
    "TradeoffFit",
    "auroc",
    "auroc_of_rows",
    "behavior_curve",
    "bootstrap_ci",
    "compare_linear_quadratic",
    "cost_effective_range",
    "fit_behavior",
    "fit_helpfulness",
    "fit_tradeoff",
    "helpfulness_curve",
    "mean_ci",
    "pooled_perplexity",
    "row_dicts",
    "series",
    "sorted_rows",
]
