"""Evaluation: sweep steering coefficients, measure behaviour and helpfulness, fit bounds."""

from steerlab.evaluate.fit import FitError, TradeoffFit, fit_behavior, fit_helpfulness, fit_tradeoff
from steerlab.evaluate.results import SweepRow
from steerlab.evaluate.sweep import SweepResult, sweep
from steerlab.evaluate.tasks import (
    ABBehaviorTask,
    ContinuationBehaviorTask,
    MultipleChoiceTask,
    PerplexityTask,
    SampledBehaviorTask,
)

__all__ = [
    "ABBehaviorTask",
    "ContinuationBehaviorTask",
    "FitError",
    "MultipleChoiceTask",
    "PerplexityTask",
    "SampledBehaviorTask",
    "SweepResult",
    "SweepRow",
    "TradeoffFit",
    "fit_behavior",
    "fit_helpfulness",
    "fit_tradeoff",
    "sweep",
]
