"""SweepFit: the typed fits of a sweep, byte-identical fit.json, the deprecated dict interface."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from rich.table import Table

from steerlab.evaluate import SweepFit, SweepResult, fit_sweep
from steerlab.evaluate.sweep_fit import pick_series
from steerlab.stats import (
    BehaviorFit,
    FitError,
    HelpfulnessFit,
    SweepRow,
    TradeoffFit,
    fit_behavior,
    fit_helpfulness,
    fit_tradeoff,
    series,
)

R = np.linspace(-4.0, 4.0, 9)
ESTIMATES = {
    "delta_lambda": {
        "name": "delta_lambda",
        "value": 0.31,
        "ci_low": 0.2,
        "ci_high": 0.4,
        "n": 5,
        "epsilon": 0.2,
        "task": "ab",
    }
}


def _rows(behavior: np.ndarray, helpfulness: np.ndarray | None = None) -> list[SweepRow]:
    rows = [
        SweepRow("ab", "behavior", "B_likelihood", float(r), float(v), float(v) - 0.1, float(v), 5)
        for r, v in zip(R, behavior, strict=True)
    ]
    if helpfulness is not None:
        rows += [
            SweepRow("mc", "helpfulness", "p_correct", float(r), float(v), 0.0, 1.0, 5)
            for r, v in zip(R, helpfulness, strict=True)
        ]
    return rows


def _noisy(values: np.ndarray, seed: int) -> np.ndarray:
    return values + np.random.default_rng(seed).normal(0.0, 0.005, values.size)


GOOD = _rows(
    _noisy(np.tanh(0.3 * R + 0.1), 1),
    _noisy(0.6 / (0.6 + 0.4 * (1 + 0.05 * R**2)), 2),
)
FLAT_BEHAVIOR = _rows(np.full(R.size, 0.2), _noisy(0.6 / (0.6 + 0.4 * (1 + 0.05 * R**2)), 2))


def old_fit_dict(rows: list[SweepRow], estimates: dict[str, Any]) -> dict[str, Any]:
    """SweepResult.fit() as it was (a dict), written out independently of SweepFit."""

    def pick(kind: str, preferred: str) -> tuple[str, str] | None:
        options = list(dict.fromkeys((r.task, r.metric) for r in rows if r.kind == kind))
        for option in options:
            if option[1] == preferred:
                return option
        return options[0] if options else None

    b_choice, h_choice = pick("behavior", "B_likelihood"), pick("helpfulness", "p_correct")
    out: dict[str, Any] = {"behavior_series": b_choice, "helpfulness_series": h_choice}
    if estimates:
        out["empirical_estimates"] = estimates
    b_fit = h_fit = None
    if b_choice is not None:
        r, values, _, _ = series(rows, *b_choice)
        try:
            b_fit = fit_behavior(r, values)
            out["behavior"] = b_fit.to_dict()
        except FitError as exc:
            out["behavior"] = {"error": str(exc)}
    if h_choice is not None:
        r, values, _, _ = series(rows, *h_choice)
        try:
            h_fit = fit_helpfulness(r, values)
            out["helpfulness"] = h_fit.to_dict()
        except FitError as exc:
            out["helpfulness"] = {"error": str(exc)}
    if b_fit is not None and h_fit is not None:
        assert b_choice is not None and h_choice is not None
        rb, vb, _, _ = series(rows, *b_choice)
        rh, vh, _, _ = series(rows, *h_choice)
        try:
            if list(rb) == list(rh):
                sign = 1 if fit_behavior(rb, vb).delta_lambda >= 0 else -1
                out["tradeoff"] = fit_tradeoff(rb, vb, vh, sign=sign).to_dict()
        except FitError as exc:
            out["tradeoff"] = {"error": str(exc)}
    return out


def old_fit_json(fit: dict[str, Any]) -> str:
    """fit.json as sweep() wrote it from the dict."""

    def default(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return str(value)

    return json.dumps(fit, indent=2, sort_keys=True, allow_nan=False, default=default)


def old_summary_lines(fit: dict[str, Any]) -> list[str]:
    """The lines steerlab.cli.print_fit_summary printed from the dict."""
    lines = []
    behavior, helpful = fit.get("behavior") or {}, fit.get("helpfulness") or {}
    if "error" in behavior:
        lines.append(f"behaviour fit: {behavior['error']}")
    elif behavior:
        lines.append(
            f"behaviour fit  B(r) = tanh(Δλ·r + artanh B0): Δλ = {behavior['delta_lambda']:.4g}, "
            f"B0 = {behavior['b0']:.3f}, R² = {behavior['r_squared']:.3f}"
        )
    if "error" in helpful:
        lines.append(f"helpfulness fit: {helpful['error']}")
    elif helpful:
        lines.append(
            f"helpfulness fit P(r) = P0/(P0+(1-P0)·a·(1+k·r²)): a = {helpful['a']:.3g}, "
            f"λσβ = {helpful['lambda_sigma_beta']:.4g}, R² = {helpful['r_squared']:.3f}"
        )
    for name, estimate in (fit.get("empirical_estimates") or {}).items():
        lines.append(
            f"empirical {name} = {estimate['value']:.4g} "
            f"[{estimate['ci_low']:.3g}, {estimate['ci_high']:.3g}] ({estimate['task']})"
        )
    window = (fit.get("tradeoff") or {}).get("cost_effective") or {}
    if window and not window.get("empty", True):
        lines.append(
            f"cost-effective range (alignment gain > helpfulness loss): "
            f"r in ({window['lower']:.3g}, {window['upper']:.3g}), best r = {window['best_r']:.3g}"
        )
    elif window:
        lines.append("cost-effective range: none (helpfulness falls faster than alignment rises)")
    return lines


CASES = {
    "both fit": (GOOD, ESTIMATES),
    "no estimates": (GOOD, {}),
    "flat behaviour": (FLAT_BEHAVIOR, ESTIMATES),
    "behaviour only": (GOOD[: R.size], {}),
    "nothing": ([], {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_to_dict_and_fit_json_equal_the_old_dict(case: str) -> None:
    rows, estimates = CASES[case]
    result = SweepResult(list(rows), {}, dict(estimates))
    fit = result.fit()
    assert isinstance(fit, SweepFit)
    old = old_fit_dict(list(rows), estimates)
    assert fit.to_dict() == old
    assert old_fit_json(fit.to_dict()) == old_fit_json(old)
    assert list(fit.to_dict()) == list(old)  # same key order too


@pytest.mark.parametrize("case", list(CASES))
def test_summary_holds_the_cli_lines(case: str) -> None:
    rows, estimates = CASES[case]
    result = SweepResult(list(rows), {}, dict(estimates))
    fit = result.fit()
    summary = fit.summary()
    assert isinstance(summary, str) and not summary.endswith("\n")
    expected = old_summary_lines(old_fit_dict(list(rows), estimates))
    if expected:
        assert summary.splitlines() == expected
    else:
        assert summary == "no fit: the sweep has no behaviour or helpfulness curve"
    # The sweep's summary: one line on what was swept, then the fit's lines.
    lines = result.summary().splitlines()
    assert lines[0].startswith(f"sweep: {len({r.coefficient for r in rows})} coefficients")
    assert lines[1:] == summary.splitlines()


def test_typed_fields() -> None:
    fit = fit_sweep(GOOD, ESTIMATES)
    assert fit.behavior_series == ("ab", "B_likelihood")
    assert fit.helpfulness_series == ("mc", "p_correct")
    assert isinstance(fit.behavior, BehaviorFit) and fit.behavior.delta_lambda > 0.25
    assert isinstance(fit.helpfulness, HelpfulnessFit)
    assert isinstance(fit.tradeoff, TradeoffFit)
    assert fit.estimates["delta_lambda"]["value"] == 0.31
    flat = fit_sweep(FLAT_BEHAVIOR)
    assert isinstance(flat.behavior, FitError) and "flat curve" in str(flat.behavior)
    assert isinstance(flat.helpfulness, HelpfulnessFit) and flat.tradeoff is None
    result = SweepResult(list(GOOD))
    assert isinstance(result.tradeoff_fit(), TradeoffFit)
    assert SweepResult(list(FLAT_BEHAVIOR)).tradeoff_fit() is None


def test_the_old_dict_interface_still_works_with_a_deprecation() -> None:
    fit = SweepResult(list(GOOD), {}, dict(ESTIMATES)).fit()
    with pytest.warns(DeprecationWarning, match="SweepFit"):
        value = fit["behavior"]["delta_lambda"]
    assert isinstance(fit.behavior, BehaviorFit)
    assert value == fit.behavior.delta_lambda
    with pytest.warns(DeprecationWarning):
        assert fit.get("tradeoff")["cost_effective"] == fit.to_dict()["tradeoff"]["cost_effective"]
    with pytest.warns(DeprecationWarning):
        assert "empirical_estimates" in fit
    with pytest.warns(DeprecationWarning):
        assert dict(fit) == fit.to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the typed interface does not warn
        fit.to_dict()
        fit.summary()
        fit.table()


def test_table_has_a_row_per_parameter() -> None:
    table = fit_sweep(GOOD, ESTIMATES).table()
    assert isinstance(table, Table)
    assert [c.header for c in table.columns] == ["fit", "parameter", "value", "detail"]
    parameters = [str(cell) for cell in table.columns[1].cells]
    assert {"Δλ", "B0", "λσβ", "a", "P0", "delta_lambda", "better fit", "r"} <= set(parameters)
    errors = fit_sweep(FLAT_BEHAVIOR).table()
    assert "error" in [str(cell) for cell in errors.columns[1].cells]


def test_pick_series_prefers_the_usual_metric() -> None:
    rows = [
        SweepRow("x", "helpfulness", "accuracy", 0.0, 0.5, 0.4, 0.6, 3),
        SweepRow("y", "helpfulness", "p_correct", 0.0, 0.5, 0.4, 0.6, 3),
    ]
    assert pick_series(rows, "helpfulness", "p_correct") == ("y", "p_correct")
    assert pick_series(rows, "helpfulness", "nope") == ("x", "accuracy")
    assert pick_series(rows, "behavior", "B_likelihood") is None
    assert pick_series(rows, "behavior", "B_likelihood", ("a", "b")) == ("a", "b")


def test_sweep_result_table_has_a_row_per_coefficient() -> None:
    table = SweepResult(list(GOOD)).table()
    assert isinstance(table, Table)
    assert table.row_count == R.size
    assert [c.header for c in table.columns] == ["coef", "ab\nB_likelihood", "mc\np_correct"]
