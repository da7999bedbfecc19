"""Evaluation: sweep steering coefficients, measure behaviour and helpfulness, fit bounds.

The package is also callable: ``steerlab.evaluate(models, output_dir, suite)`` runs an
evaluation suite (:func:`steerlab.evaluate.suite.evaluate`), so that ``sl.evaluate(...)``
works while ``steerlab.evaluate`` stays importable as a package.
"""

import os
import sys
import types
from collections.abc import Sequence

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
from steerlab.stats.fit_results import FitError, TradeoffFit
from steerlab.stats.fitting import fit_behavior, fit_helpfulness, fit_tradeoff
from steerlab.stats.rows import SweepRow


class _CallablePackage(types.ModuleType):
    """The ``steerlab.evaluate`` package, callable as :func:`evaluate_suite`."""

    def __call__(
        self,
        models: Sequence[EvalModel | str] | str,
        output_dir: str | os.PathLike[str] | None,
        suite: HonestySuite | str = "honesty",
        *,
        progress: bool = True,
        resume: bool = True,
    ) -> SuiteResult:
        """Run an evaluation suite: see :func:`steerlab.evaluate.suite.evaluate`."""
        return evaluate_suite(models, output_dir, suite, progress=progress, resume=resume)


sys.modules[__name__].__class__ = _CallablePackage

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
