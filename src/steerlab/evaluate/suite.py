"""Deprecated import path: use :mod:`steerlab.evaluate` (the honesty suite's modules below).

The honesty suite, once one module, is split along its seams: result rows
(:mod:`~steerlab.evaluate.suite_rows`), model specs (:mod:`~steerlab.evaluate.model_specs`),
settings (:mod:`~steerlab.evaluate.suite_config`), data (:mod:`~steerlab.evaluate.suite_data`),
metrics (:mod:`~steerlab.evaluate.suite_metrics`), result (:mod:`~steerlab.evaluate.suite_result`)
and running (:mod:`~steerlab.evaluate.suite_run`). This module re-exports every name it had;
``evaluate`` is the deprecated name of :func:`~steerlab.evaluate.suite_run.evaluate_models`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from steerlab.evaluate.logprobs import first_token_id
from steerlab.evaluate.model_specs import EvalModel, check_sources, parse_models
from steerlab.evaluate.suite_config import (
    COSINE_DATASET,
    DATA_ENV,
    FACT_FILES,
    METRICS,
    SPLITS,
    SUITES,
    TRUTHFULQA,
    TRUTHFULQA_FILE,
    HonestySuite,
    find_data_dir,
)
from steerlab.evaluate.suite_data import tuned_on
from steerlab.evaluate.suite_result import BARS, CONFIG, RESULTS, TABLE_CSV, TABLE_MD, SuiteResult
from steerlab.evaluate.suite_rows import SuiteRow
from steerlab.evaluate.suite_run import FORMAT, evaluate_models
from steerlab.stats.intervals import auroc, bootstrap_ci

__all__ = [
    "BARS",
    "CONFIG",
    "COSINE_DATASET",
    "DATA_ENV",
    "FACT_FILES",
    "FORMAT",
    "METRICS",
    "RESULTS",
    "SPLITS",
    "SUITES",
    "TABLE_CSV",
    "TABLE_MD",
    "TRUTHFULQA",
    "TRUTHFULQA_FILE",
    "EvalModel",
    "HonestySuite",
    "SuiteResult",
    "SuiteRow",
    "auroc",
    "bootstrap_ci",
    "check_sources",
    "evaluate",
    "evaluate_models",
    "find_data_dir",
    "first_token_id",
    "parse_models",
    "tuned_on",
]


def evaluate(
    models: Sequence[EvalModel | str] | str,
    output_dir: str | os.PathLike[str] | None,
    suite: HonestySuite | str = "honesty",
    *,
    progress: bool = True,
    resume: bool = True,
) -> SuiteResult:
    """Deprecated name of :func:`steerlab.evaluate.evaluate_models` (same arguments)."""
    warnings.warn(
        "steerlab.evaluate.suite.evaluate is deprecated; use steerlab.evaluate.evaluate_models",
        DeprecationWarning,
        stacklevel=2,
    )
    return evaluate_models(models, output_dir, suite, progress=progress, resume=resume)
