"""Deprecated import path: use :mod:`steerlab.stats` (``steerlab.stats.fitting``, ``fit_results``).

The trade-off fits are pure statistics and live in :mod:`steerlab.stats`; this module re-exports
them so that ``from steerlab.evaluate.fit import fit_tradeoff`` keeps working.
"""

from steerlab.stats.fit_results import (
    BehaviorFit,
    CostEffectiveRange,
    FitError,
    HelpfulnessFit,
    PolyComparison,
    TradeoffFit,
)
from steerlab.stats.fitting import (
    compare_linear_quadratic,
    cost_effective_range,
    fit_behavior,
    fit_helpfulness,
    fit_tradeoff,
)

__all__ = [
    "BehaviorFit",
    "CostEffectiveRange",
    "FitError",
    "HelpfulnessFit",
    "PolyComparison",
    "TradeoffFit",
    "compare_linear_quadratic",
    "cost_effective_range",
    "fit_behavior",
    "fit_helpfulness",
    "fit_tradeoff",
]
