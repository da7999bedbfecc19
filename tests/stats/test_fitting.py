"""Tests for steerlab.stats.fitting: recovery of known parameters from noisy synthetic sweeps."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from steerlab.errors import SpecError, SteerlabError
from steerlab.stats import (
    BehaviorFit,
    CostEffectiveRange,
    FitError,
    HelpfulnessFit,
    compare_linear_quadratic,
    cost_effective_range,
    fit_behavior,
    fit_helpfulness,
    fit_tradeoff,
)

R = np.linspace(-8.0, 8.0, 17)
NOISE_SD = 0.01


def behavior_curve(r: np.ndarray, delta_lambda: float, b0: float) -> np.ndarray:
    """The paper's behaviour model, written independently of the module under test."""
    return np.tanh(delta_lambda * r + np.arctanh(b0))


def helpfulness_curve(r: np.ndarray, p0: float, a: float, k: float) -> np.ndarray:
    """The paper's helpfulness model, written independently of the module under test."""
    return p0 / (p0 + (1.0 - p0) * a * (1.0 + k * r**2))


def noisy(values: np.ndarray, seed: int, sd: float, low: float, high: float) -> np.ndarray:
    """Add seeded gaussian noise and keep the values in their valid range."""
    rng = np.random.default_rng(seed)
    return np.clip(values + rng.normal(0.0, sd, values.shape), low, high)


def behavior_data(delta_lambda: float, b0: float, seed: int = 0) -> np.ndarray:
    """Noisy behaviour sweep over R."""
    return noisy(behavior_curve(R, delta_lambda, b0), seed, NOISE_SD, -1.0, 1.0)


def helpfulness_data(
    p0: float, a: float, k: float, seed: int = 0, sd: float = NOISE_SD
) -> np.ndarray:
    """Noisy helpfulness sweep over R."""
    return noisy(helpfulness_curve(R, p0, a, k), seed, sd, 0.0, 1.0)


def make_behavior_fit(delta_lambda: float, b0: float) -> BehaviorFit:
    return BehaviorFit(
        b0=b0,
        delta_lambda=delta_lambda,
        delta_lambda_stderr=0.0,
        r_squared=1.0,
        n_points=17,
        b0_source="given",
    )


def make_helpfulness_fit(p0: float, k: float, a: float = 1.0) -> HelpfulnessFit:
    return HelpfulnessFit(
        p0=p0,
        a=a,
        k=k,
        lambda_sigma_beta=math.sqrt(2 * k),
        a_stderr=0.0,
        k_stderr=0.0,
        lambda_sigma_beta_stderr=0.0,
        r_squared=1.0,
        n_points=17,
        p0_source="given",
    )


# ---------------------------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("delta_lambda", "b0"), [(0.3, -0.2), (0.15, 0.4)])
def test_fit_behavior_recovers_delta_lambda(delta_lambda: float, b0: float) -> None:
    values = behavior_data(delta_lambda, b0)
    fit = fit_behavior(R, values)
    assert fit.b0_source == "measured"
    assert fit.b0 == pytest.approx(values[R == 0][0])
    assert fit.delta_lambda == pytest.approx(delta_lambda, rel=0.05)
    assert fit.r_squared > 0.95
    assert fit.n_points == 17
    assert 0 < fit.delta_lambda_stderr < 0.05 * delta_lambda


@pytest.mark.parametrize(("delta_lambda", "b0"), [(0.3, -0.2), (0.15, 0.4)])
def test_fit_behavior_without_zero_fits_b0(delta_lambda: float, b0: float) -> None:
    values = behavior_data(delta_lambda, b0, seed=1)
    keep = R != 0
    fit = fit_behavior(R[keep], values[keep])
    assert fit.b0_source == "fitted"
    assert fit.n_points == 16
    assert fit.b0 == pytest.approx(b0, abs=0.03)
    assert fit.delta_lambda == pytest.approx(delta_lambda, rel=0.05)
    assert fit.r_squared > 0.95


def test_fit_behavior_given_b0_is_used() -> None:
    values = behavior_data(0.3, -0.2, seed=2)
    fit = fit_behavior(R, values, b0=-0.2)
    assert fit.b0_source == "given"
    assert fit.b0 == -0.2
    assert fit.delta_lambda == pytest.approx(0.3, rel=0.05)


def test_fit_behavior_negative_slope() -> None:
    values = behavior_data(-0.2, 0.1, seed=3)
    fit = fit_behavior(R, values)
    assert fit.delta_lambda == pytest.approx(-0.2, rel=0.05)


def test_fit_behavior_clips_saturated_b0() -> None:
    values = np.tanh(0.2 * R + 2.0)
    values[R == 0] = 1.0
    fit = fit_behavior(R, values)
    assert math.isfinite(fit.delta_lambda)
    assert np.all(np.isfinite(fit.predict(R)))


def test_behavior_predict_matches_model() -> None:
    fit = make_behavior_fit(0.25, -0.3)
    r = np.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(fit.predict(r), behavior_curve(r, 0.25, -0.3), rtol=1e-5)
    assert fit.predict(r).shape == r.shape


# ---------------------------------------------------------------------------------------------
# Helpfulness
# ---------------------------------------------------------------------------------------------


def test_fit_helpfulness_recovers_lambda_sigma_beta() -> None:
    values = helpfulness_data(0.6, 1.0, 0.02)
    fit = fit_helpfulness(R, values)
    assert fit.p0_source == "measured"
    assert fit.lambda_sigma_beta == pytest.approx(math.sqrt(2 * 0.02), rel=0.05)
    assert fit.lambda_sigma_beta == pytest.approx(math.sqrt(2 * fit.k))
    assert fit.a == pytest.approx(1.0, rel=0.05)
    assert fit.r_squared > 0.95
    assert fit.n_points == 17


def test_fit_helpfulness_recovers_small_curvature() -> None:
    # k = 0.005 moves P by only ~0.07 over the whole sweep, so with sd 0.01 noise neither R² > 0.95
    # nor 5% on λσβ is reachable by any estimator; use less noise for this shallow curve.
    values = helpfulness_data(0.45, 1.1, 0.005, sd=0.002)
    fit = fit_helpfulness(R, values)
    assert fit.lambda_sigma_beta == pytest.approx(math.sqrt(2 * 0.005), rel=0.05)
    assert fit.r_squared > 0.95


def test_fit_helpfulness_given_p0_recovers_a() -> None:
    values = helpfulness_data(0.45, 1.1, 0.005, seed=4, sd=0.002)
    fit = fit_helpfulness(R, values, p0=0.45)
    assert fit.p0_source == "given"
    assert fit.p0 == 0.45
    assert fit.a == pytest.approx(1.1, rel=0.05)
    assert fit.lambda_sigma_beta == pytest.approx(math.sqrt(2 * 0.005), rel=0.05)


def test_fit_helpfulness_without_zero_fits_p0() -> None:
    values = helpfulness_data(0.6, 1.0, 0.02, seed=5)
    keep = R != 0
    fit = fit_helpfulness(R[keep], values[keep])
    assert fit.p0_source == "fitted"
    assert fit.a == 1.0
    assert fit.p0 == pytest.approx(0.6, abs=0.03)
    assert fit.lambda_sigma_beta == pytest.approx(math.sqrt(2 * 0.02), rel=0.05)
    assert fit.r_squared > 0.95


def test_fit_helpfulness_k_is_not_negative() -> None:
    # Helpfulness that rises away from 0 would need k < 0; the fit must stop at the bound.
    values = 0.5 + 0.004 * R**2
    fit = fit_helpfulness(R, values)
    assert fit.k >= 0.0
    assert fit.a > 0.0


def test_helpfulness_predict_matches_model() -> None:
    fit = make_helpfulness_fit(0.6, 0.02, a=1.2)
    r = np.array([-3.0, 0.0, 5.0])
    np.testing.assert_allclose(fit.predict(r), helpfulness_curve(r, 0.6, 1.2, 0.02), rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Linear versus quadratic near r = 0
# ---------------------------------------------------------------------------------------------


def test_helpfulness_is_quadratic_near_zero() -> None:
    values = helpfulness_data(0.6, 1.0, 0.02)
    comparison = compare_linear_quadratic(R, values)
    assert comparison.window == 4.0
    assert comparison.n_points == 9
    assert comparison.better == "quadratic"
    assert comparison.quadratic_adjusted_r_squared > comparison.linear_adjusted_r_squared
    assert comparison.quadratic_aic < comparison.linear_aic
    _, c1, c2 = comparison.quadratic_coefficients
    assert c2 < 0
    # The curvature dominates the slope across the window.
    assert abs(c2) * comparison.window > 5 * abs(c1)


@pytest.mark.parametrize(("delta_lambda", "b0"), [(0.3, -0.2), (0.15, 0.4), (0.3, 0.0)])
def test_behavior_is_linear_near_zero(delta_lambda: float, b0: float) -> None:
    values = behavior_data(delta_lambda, b0)
    comparison = compare_linear_quadratic(R, values)
    _, c1, c2 = comparison.quadratic_coefficients
    assert comparison.linear_r_squared > 0.95
    assert c1 == pytest.approx(comparison.linear_coefficients[1], rel=0.1)
    # Either linear wins, or the quadratic term adds little across the window.
    assert comparison.better == "linear" or abs(c2) * comparison.window < 0.3 * abs(c1)


def test_odd_behavior_curve_prefers_linear() -> None:
    values = behavior_curve(R, 0.1, 0.0)  # tanh with B0 = 0 is odd: no quadratic term at all
    comparison = compare_linear_quadratic(R, values)
    assert comparison.better == "linear"
    assert comparison.quadratic_coefficients[2] == pytest.approx(0.0, abs=1e-12)


def test_compare_explicit_window() -> None:
    values = helpfulness_data(0.6, 1.0, 0.02)
    comparison = compare_linear_quadratic(R, values, window=6.0)
    assert comparison.window == 6.0
    assert comparison.n_points == 13


def test_compare_default_window_widens_to_four_points() -> None:
    r = np.array([-10.0, -3.0, 0.0, 3.0, 10.0])
    comparison = compare_linear_quadratic(r, 0.5 - 0.001 * r**2 + 0.01 * r)
    assert comparison.n_points >= 4


def test_compare_rejects_too_small_window() -> None:
    with pytest.raises(FitError, match=r"\|r\| <= 1.*got 3"):
        compare_linear_quadratic(R, helpfulness_data(0.6, 1.0, 0.02), window=1.0)


def test_compare_rejects_bad_window() -> None:
    with pytest.raises(FitError, match="window"):
        compare_linear_quadratic(R, helpfulness_data(0.6, 1.0, 0.02), window=-1.0)


def test_compare_rejects_flat_window() -> None:
    values = np.where(np.abs(R) <= 4, 0.5, 0.3)
    with pytest.raises(FitError, match="flat curve, nothing to fit"):
        compare_linear_quadratic(R, values)


# ---------------------------------------------------------------------------------------------
# Cost-effective range
# ---------------------------------------------------------------------------------------------


def test_cost_effective_range_typical_case() -> None:
    behavior = fit_behavior(R, behavior_data(0.3, -0.2))
    helpfulness = fit_helpfulness(R, helpfulness_data(0.6, 1.0, 0.02))
    result = cost_effective_range(behavior, helpfulness, -8.0, 8.0)
    assert isinstance(result, CostEffectiveRange)
    assert not result.empty
    assert result.lower == 0.0
    assert result.upper is not None and result.upper > 0.5
    assert result.lower < 0.1 < result.upper  # small positive coefficients are worth it
    assert result.best_r is not None and 0.0 < result.best_r <= result.upper
    assert result.gain_at_best is not None and result.loss_at_best is not None
    assert result.best_net_gain == pytest.approx(result.gain_at_best - result.loss_at_best)
    assert result.best_net_gain > 0


def test_cost_effective_range_matches_analytic_crossing() -> None:
    # Near 0: G ≈ Δλ(1 - B0²)r/2 and L ≈ P0(1 - P0)k r², crossing at r* = Δλ(1 - B0²)/(2P0(1-P0)k).
    behavior = make_behavior_fit(0.02, 0.0)
    helpfulness = make_helpfulness_fit(0.5, 0.5)
    result = cost_effective_range(behavior, helpfulness, -5.0, 5.0)
    assert not result.empty
    assert not result.truncated
    assert result.upper == pytest.approx(0.02 / (2 * 0.25 * 0.5), rel=0.02)
    # At the upper end gain and loss agree (the end is refined by root finding).
    r_end = np.array(result.upper)
    gain = (behavior.predict(r_end) - behavior.predict(np.array(0.0))) / 2
    loss = helpfulness.predict(np.array(0.0)) - helpfulness.predict(r_end)
    assert float(gain - loss) == pytest.approx(0.0, abs=1e-9)
    # The best point maximises G - L = c·r - d·r², i.e. sits near r*/2.
    assert result.best_r == pytest.approx(result.upper / 2, rel=0.05)


def test_cost_effective_range_empty_when_helpfulness_collapses() -> None:
    behavior = make_behavior_fit(1e-3, -0.2)
    helpfulness = make_helpfulness_fit(0.6, 1e3)
    result = cost_effective_range(behavior, helpfulness, -8.0, 8.0)
    assert result.empty
    assert result.lower is None and result.upper is None and result.best_r is None
    json.dumps(result.to_dict())


def test_cost_effective_range_empty_on_wrong_side() -> None:
    behavior = make_behavior_fit(0.3, -0.2)
    helpfulness = make_helpfulness_fit(0.6, 0.02)
    assert cost_effective_range(behavior, helpfulness, -8.0, 8.0, sign=-1).empty


def test_cost_effective_range_negative_orientation() -> None:
    behavior = make_behavior_fit(-0.3, -0.2)
    helpfulness = make_helpfulness_fit(0.6, 0.02)
    result = cost_effective_range(behavior, helpfulness, -8.0, 8.0, sign=-1)
    assert not result.empty
    assert result.upper == 0.0
    assert result.lower is not None and result.lower < -0.1
    assert result.best_r is not None and result.best_r < 0
    mirrored = cost_effective_range(make_behavior_fit(0.3, -0.2), helpfulness, -8.0, 8.0)
    assert result.lower == pytest.approx(-mirrored.upper)
    assert result.best_r == pytest.approx(-mirrored.best_r)


def test_cost_effective_range_truncated_flag() -> None:
    behavior = make_behavior_fit(0.3, -0.2)
    helpfulness = make_helpfulness_fit(0.6, 0.001)
    result = cost_effective_range(behavior, helpfulness, -2.0, 2.0)
    assert result.truncated
    assert result.upper == 2.0


@pytest.mark.parametrize(
    ("kwargs", "detail"),
    [
        ({"sign": 0}, "sign must be"),
        ({"n": 2}, "got 2"),
        ({"r_min": 1.0}, "contain r = 0"),
        ({"r_min": 3.0, "r_max": -3.0}, "below r_max"),
        ({"r_max": 0.0}, r"side sign=\+1"),
        ({"r_max": math.inf}, "finite"),
    ],
)
def test_cost_effective_range_bad_arguments(kwargs: dict[str, float], detail: str) -> None:
    arguments = {"r_min": -8.0, "r_max": 8.0, "n": 2001, "sign": 1, **kwargs}
    with pytest.raises(FitError, match=detail):
        cost_effective_range(
            make_behavior_fit(0.3, -0.2), make_helpfulness_fit(0.6, 0.02), **arguments
        )


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_fit_error_is_a_spec_error() -> None:
    assert issubclass(FitError, SpecError)
    assert issubclass(FitError, SteerlabError)


Fitter = Callable[..., object]
FITTERS: list[Fitter] = [fit_behavior, fit_helpfulness]


@pytest.mark.parametrize("fitter", FITTERS)
def test_too_few_points(fitter: Fitter) -> None:
    with pytest.raises(FitError, match=r"at least 3 points.*got 2"):
        fitter([0.0, 1.0], [0.3, 0.5])


@pytest.mark.parametrize("fitter", FITTERS)
def test_length_mismatch(fitter: Fitter) -> None:
    with pytest.raises(FitError, match="4 coefficients, 3 values"):
        fitter([0.0, 1.0, 2.0, 3.0], [0.3, 0.5, 0.6])


@pytest.mark.parametrize("fitter", FITTERS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_values(fitter: Fitter, bad: float) -> None:
    with pytest.raises(FitError, match=rf"non-finite .*value {bad} at index 2"):
        fitter([0.0, 1.0, 2.0, 3.0], [0.3, 0.5, bad, 0.6])


@pytest.mark.parametrize("fitter", FITTERS)
def test_non_finite_coefficients(fitter: Fitter) -> None:
    with pytest.raises(FitError, match="non-finite coefficient nan at index 1"):
        fitter([0.0, math.nan, 2.0, 3.0], [0.3, 0.5, 0.4, 0.6])


def test_behavior_out_of_range() -> None:
    with pytest.raises(FitError, match=r"behaviour value 1.3 at r=2 .*outside \[-1, 1\]"):
        fit_behavior([0.0, 1.0, 2.0], [0.1, 0.5, 1.3])


def test_helpfulness_out_of_range() -> None:
    with pytest.raises(FitError, match=r"helpfulness value -0.2 at r=1 .*outside \[0, 1\]"):
        fit_helpfulness([0.0, 1.0, 2.0], [0.5, -0.2, 0.4])
    with pytest.raises(FitError, match=r"helpfulness value 1.1 "):
        fit_helpfulness([0.0, 1.0, 2.0], [0.5, 1.1, 0.4])


def test_behavior_accepts_negative_values() -> None:
    fit = fit_behavior(R, np.clip(behavior_curve(R, 0.3, -0.2), -1, 1))
    assert fit.delta_lambda == pytest.approx(0.3, rel=1e-3)


@pytest.mark.parametrize("fitter", FITTERS)
def test_flat_curve(fitter: Fitter) -> None:
    with pytest.raises(FitError, match="flat curve, nothing to fit"):
        fitter(R, np.full(R.shape, 0.4))
    almost_flat = 0.4 + 5e-11 * np.arange(R.size)  # spread 8e-10, within the 1e-9 tolerance
    with pytest.raises(FitError, match="flat curve, nothing to fit"):
        fitter(R, almost_flat)


@pytest.mark.parametrize("fitter", FITTERS)
def test_single_coefficient(fitter: Fitter) -> None:
    with pytest.raises(FitError, match="2 distinct values"):
        fitter([1.0, 1.0, 1.0], [0.3, 0.4, 0.5])


@pytest.mark.parametrize(
    ("fitter", "values"),
    [
        (fit_behavior, behavior_data(0.3, -0.2)),
        (fit_helpfulness, helpfulness_data(0.6, 1.0, 0.02)),
    ],
)
def test_non_convergence(fitter: Fitter, values: np.ndarray) -> None:
    with pytest.raises(FitError, match="did not converge"):
        fitter(R, values, max_evaluations=1)


def test_bad_baselines() -> None:
    with pytest.raises(FitError, match=r"b0 must be .*\[-1, 1\], got 1.5"):
        fit_behavior(R, behavior_data(0.3, -0.2), b0=1.5)
    with pytest.raises(FitError, match=r"p0 must be .*\[0, 1\], got nan"):
        fit_helpfulness(R, helpfulness_data(0.6, 1.0, 0.02), p0=math.nan)


def test_error_messages_are_one_line() -> None:
    with pytest.raises(FitError) as info:
        fit_helpfulness(R, helpfulness_data(0.6, 1.0, 0.02), max_evaluations=1)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Tradeoff and serialisation
# ---------------------------------------------------------------------------------------------


def test_fit_tradeoff_end_to_end() -> None:
    behavior = behavior_data(0.3, -0.2, seed=6)
    helpfulness = helpfulness_data(0.6, 1.0, 0.02, seed=6)
    result = fit_tradeoff(R, behavior, helpfulness)
    assert result.behavior.delta_lambda == pytest.approx(0.3, rel=0.05)
    assert result.helpfulness.lambda_sigma_beta == pytest.approx(math.sqrt(0.04), rel=0.05)
    assert result.helpfulness_poly.better == "quadratic"
    assert not result.cost_effective.empty
    assert result.cost_effective.r_min == -8.0 and result.cost_effective.r_max == 8.0

    encoded = json.dumps(result.to_dict(), allow_nan=False)
    decoded = json.loads(encoded)
    assert decoded["behavior"]["delta_lambda"] == pytest.approx(result.behavior.delta_lambda)
    assert decoded["helpfulness_poly"]["better"] == "quadratic"
    assert decoded["cost_effective"]["empty"] is False


def test_to_dict_replaces_non_finite_with_none() -> None:
    fit = BehaviorFit(
        b0=0.0,
        delta_lambda=0.1,
        delta_lambda_stderr=math.inf,
        r_squared=1.0,
        n_points=3,
        b0_source="given",
    )
    assert fit.to_dict()["delta_lambda_stderr"] is None
    json.dumps(fit.to_dict(), allow_nan=False)
    json.dumps(make_helpfulness_fit(0.6, 0.0).to_dict(), allow_nan=False)


def test_results_are_frozen() -> None:
    fit = make_behavior_fit(0.3, -0.2)
    with pytest.raises(AttributeError):
        fit.delta_lambda = 1.0  # type: ignore[misc]
