"""Evaluation: sweep steering coefficients, measure behaviour and helpfulness, fit bounds."""

from steerlab.evaluate.fit import FitError, TradeoffFit, fit_behavior, fit_helpfulness, fit_tradeoff
from steerlab.evaluate.results import SweepRow
from steerlab.evaluate.suite import (
    EvalModel,
    HonestySuite,
    SuiteResult,
    SuiteRow,
    auroc,
    bootstrap_ci,
    find_data_dir,
    parse_models,
)
from steerlab.evaluate.suite import evaluate as evaluate_suite
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
    "EvalModel",
    "FitError",
    "HonestySuite",
    "MultipleChoiceTask",
    "PerplexityTask",
    "SampledBehaviorTask",
    "SuiteResult",
    "SuiteRow",
    "SweepResult",
    "SweepRow",
    "TradeoffFit",
    "auroc",
    "bootstrap_ci",
    "evaluate_suite",
    "find_data_dir",
    "fit_behavior",
    "fit_helpfulness",
    "fit_tradeoff",
    "parse_models",
    "sweep",
]
