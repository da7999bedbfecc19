"""The public API: every function behind a CLI command is importable from ``steerlab`` under its
own name, and the evaluation package is a package."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import steerlab as sl

# Each documented command and the public function behind it.
COMMANDS = {
    "extract": "extract",
    "generate": "generate",
    "diff": "model_diff",
    "compare": "compare",
    "sweep": "sweep",
    "calibrate": "calibrate",
    "matrix": "steering_matrix",
    "fold": "fold",
    "eval": "evaluate_models",
    "finetune": "finetune",
    "tune": "tune",
    "dataset qa": "answer_questions",
    "dataset pairs": "pair_honest_deceptive",
    "demo": "run_demo",
    "run": "run_experiment",
    "report": "write_report",
    "schema": "experiment_schema",
}


@pytest.mark.parametrize("command,name", sorted(COMMANDS.items()))
def test_every_command_has_its_function_at_the_top(command: str, name: str) -> None:
    assert name in sl.__all__, command
    assert callable(getattr(sl, name)), command


def test_all_names_resolve() -> None:
    missing = [name for name in sl.__all__ if not hasattr(sl, name)]
    assert missing == []


def test_function_names_survive_importing_their_modules() -> None:
    # A submodule named like a top-level function would replace it when first imported.
    for module in ("steerlab.extract.comparison", "steerlab.extract.model_diff", "steerlab.cli"):
        importlib.import_module(module)
    assert sl.compare.__module__ == "steerlab.extract.comparison"
    assert callable(sl.compare) and callable(sl.extract) and callable(sl.generate)


def test_evaluate_is_a_package_whose_call_is_deprecated() -> None:
    assert sl.evaluate.__name__ == "steerlab.evaluate"
    assert hasattr(sl.evaluate, "__path__")  # a package
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(sl.SteerlabError):
            sl.evaluate([], None, "no-such-suite")  # forwarded to evaluate_models, which checks
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_the_package_imports_no_cli() -> None:
    code = "import sys, steerlab; print(any(m.startswith('steerlab.cli') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
