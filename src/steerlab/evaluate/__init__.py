"""Evaluation: sweep steering coefficients, compare models on the honesty suite, the matrix.

* Sweeps (:func:`sweep`, :class:`SweepResult`): every task at every coefficient, with the
  trade-off fits (:class:`SweepFit`); tasks in :mod:`~steerlab.evaluate.tasks`, built from
  ``KIND:PATH`` specs by :mod:`~steerlab.evaluate.specs`, response scorers in
  :mod:`~steerlab.evaluate.scorers`.
* The honesty suite (:func:`evaluate_models`, :class:`HonestySuite`, :class:`EvalModel`,
  :class:`SuiteResult`): models compared on honesty and capability metrics.
* Calibration (:func:`calibrate`, :class:`Calibration`, :class:`CalibrationFit`): a quick
  sweep of both signs that recommends a coefficient per sign and stores it in the vector.
* The steering matrix (:func:`steering_matrix`, :class:`MatrixSettings`,
  :class:`MatrixResult`): every vector x operator x normalisation x layer mode x coefficient.

Every result renders itself the same way: ``table()`` (a rich table) and ``summary()``
(plain-text lines). Statistics and fits are :mod:`steerlab.stats`'s.

Calling the package (``steerlab.evaluate(models, output_dir, suite)``) still runs the suite,
with a :class:`DeprecationWarning`: use :func:`evaluate_models`.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from collections.abc import Sequence

from steerlab.evaluate.calibrate import Calibration, calibrate
from steerlab.evaluate.calibrate_fit import CalibrationFit
from steerlab.evaluate.estimates import Estimate
from steerlab.evaluate.matrix import (
    AnswerChangeScorer,
    MatrixResult,
    MatrixRow,
    MatrixSettings,
    steering_matrix,
)
from steerlab.evaluate.model_specs import EvalModel, check_sources, parse_models
from steerlab.evaluate.scorers import (
    SCORERS,
    ABAnswerScorer,
    AgreementScorer,
    BaseScorer,
    JudgeError,
    LLMJudgeScorer,
    LocalJudge,
    OpenAIJudge,
    RefusalScorer,
    Scorer,
    make_scorer,
)
from steerlab.evaluate.specs import behavior_task, helpfulness_task, perplexity_task, task_name
from steerlab.evaluate.suite_config import METRICS, SPLITS, HonestySuite, find_data_dir
from steerlab.evaluate.suite_result import SuiteResult
from steerlab.evaluate.suite_rows import SuiteRow
from steerlab.evaluate.suite_run import evaluate_models
from steerlab.evaluate.sweep import SweepResult, empirical_estimates, sweep
from steerlab.evaluate.sweep_fit import SweepFit, fit_sweep
from steerlab.evaluate.tasks import (
    ABBehaviorTask,
    ContinuationBehaviorTask,
    MultipleChoiceTask,
    PerplexityTask,
    ResponseScorer,
    RunContext,
    SampledBehaviorTask,
    Task,
)
from steerlab.stats.fit_results import FitError, TradeoffFit
from steerlab.stats.fitting import fit_behavior, fit_helpfulness, fit_tradeoff
from steerlab.stats.intervals import auroc, bootstrap_ci
from steerlab.stats.rows import SweepRow

_CALL_DEPRECATION = "steerlab.evaluate(...) is deprecated; use steerlab.evaluate_models(...)"


def evaluate_suite(
    models: Sequence[EvalModel | str] | str,
    output_dir: str | os.PathLike[str] | None,
    suite: HonestySuite | str = "honesty",
    *,
    progress: bool = True,
    resume: bool = True,
) -> SuiteResult:
    """Deprecated name of :func:`evaluate_models` (same arguments)."""
    warnings.warn(
        "steerlab.evaluate.evaluate_suite is deprecated; use steerlab.evaluate.evaluate_models",
        DeprecationWarning,
        stacklevel=2,
    )
    return evaluate_models(models, output_dir, suite, progress=progress, resume=resume)


class _CallablePackage(types.ModuleType):
    """The ``steerlab.evaluate`` package, still callable (deprecated) as :func:`evaluate_models`.

    ``sl.evaluate(models, out, suite)`` was the suite's entry point; the package keeps
    answering it so that old scripts run, and says what to call instead.
    """

    def __call__(
        self,
        models: Sequence[EvalModel | str] | str,
        output_dir: str | os.PathLike[str] | None,
        suite: HonestySuite | str = "honesty",
        *,
        progress: bool = True,
        resume: bool = True,
    ) -> SuiteResult:
        """Deprecated: run the suite with :func:`evaluate_models`."""
        warnings.warn(_CALL_DEPRECATION, DeprecationWarning, stacklevel=2)
        return evaluate_models(models, output_dir, suite, progress=progress, resume=resume)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = [
    "METRICS",
    "SCORERS",
    "SPLITS",
    "ABAnswerScorer",
    "ABBehaviorTask",
    "AgreementScorer",
    "AnswerChangeScorer",
    "BaseScorer",
    "Calibration",
    "CalibrationFit",
    "ContinuationBehaviorTask",
    "Estimate",
    "EvalModel",
    "FitError",
    "HonestySuite",
    "JudgeError",
    "LLMJudgeScorer",
    "LocalJudge",
    "MatrixResult",
    "MatrixRow",
    "MatrixSettings",
    "MultipleChoiceTask",
    "OpenAIJudge",
    "PerplexityTask",
    "RefusalScorer",
    "ResponseScorer",
    "RunContext",
    "SampledBehaviorTask",
    "Scorer",
    "SuiteResult",
    "SuiteRow",
    "SweepFit",
    "SweepResult",
    "SweepRow",
    "Task",
    "TradeoffFit",
    "auroc",
    "behavior_task",
    "bootstrap_ci",
    "calibrate",
    "check_sources",
    "empirical_estimates",
    "evaluate_models",
    "evaluate_suite",
    "find_data_dir",
    "fit_behavior",
    "fit_helpfulness",
    "fit_sweep",
    "fit_tradeoff",
    "helpfulness_task",
    "make_scorer",
    "parse_models",
    "perplexity_task",
    "steering_matrix",
    "sweep",
    "task_name",
]
