"""The steerlab.evaluate package: its exports, old import paths, the deprecated call."""

from __future__ import annotations

import importlib
import warnings

import pytest
from suite_helpers import entry, make_suite

from conftest import make_model
from steerlab.evaluate import evaluate_models


@pytest.fixture
def small():
    return make_model("llama", layers=3, hidden=32)


def test_the_package_is_callable_as_sl_evaluate_with_a_deprecation(small, tmp_path):
    """`sl.evaluate(...)` still runs the suite, warns, while `steerlab.evaluate` is a package."""
    import steerlab as sl
    import steerlab.evaluate.tasks as tasks_module

    model, tokenizer = small
    suite = make_suite(tmp_path, truthfulqa=None, text=None, bootstrap=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name does not warn
        direct = evaluate_models([entry("m", model, tokenizer)], None, suite, progress=False)
    with pytest.warns(DeprecationWarning, match=r"use steerlab\.evaluate_models\(\.\.\.\)"):
        called = sl.evaluate([entry("m", model, tokenizer)], None, suite, progress=False)
    assert [r.to_json() for r in called.rows] == [r.to_json() for r in direct.rows]
    assert tasks_module.ABBehaviorTask is sl.evaluate.ABBehaviorTask

    import steerlab.evaluate.suite as suite_module

    with pytest.warns(DeprecationWarning, match="evaluate_models"):
        old = suite_module.evaluate([entry("m", model, tokenizer)], None, suite, progress=False)
    assert [r.to_json() for r in old.rows] == [r.to_json() for r in direct.rows]


def test_every_public_name_is_exported():
    package = importlib.import_module("steerlab.evaluate")
    for name in (
        "sweep",
        "SweepResult",
        "SweepFit",
        "evaluate_models",
        "steering_matrix",
        "MatrixSettings",
        "MatrixResult",
        "HonestySuite",
        "EvalModel",
        "SuiteResult",
        "ABBehaviorTask",
        "MultipleChoiceTask",
        "RefusalScorer",
        "LLMJudgeScorer",
        "behavior_task",
    ):
        assert name in package.__all__ and hasattr(package, name), name


@pytest.mark.parametrize(
    ("old", "names"),
    [
        (
            "steerlab.evaluate.suite",
            ["EvalModel", "HonestySuite", "SuiteResult", "SuiteRow", "SPLITS", "METRICS",
             "RESULTS", "CONFIG", "BARS", "auroc", "bootstrap_ci", "find_data_dir",
             "parse_models", "first_token_id", "check_sources", "tuned_on", "evaluate"],
        ),
        ("steerlab.evaluate.fit", ["FitError", "TradeoffFit", "fit_tradeoff", "BehaviorFit"]),
        ("steerlab.evaluate.results", ["SweepRow", "mean_ci", "series", "sorted_rows", "KINDS"]),
        ("steerlab.evaluate.scoring", ["letter_token_id", "next_token_logprobs", "token_nll"]),
        ("steerlab.evaluate.scorers", ["RefusalScorer", "LocalJudge", "make_scorer", "SCORERS"]),
    ],
)  # fmt: skip
def test_old_import_paths_keep_their_names(old, names):
    module = importlib.import_module(old)
    for name in names:
        assert hasattr(module, name), f"{old}.{name}"
