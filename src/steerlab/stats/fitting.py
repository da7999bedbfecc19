"""Fit steering sweeps to the alignment/helpfulness trade-off model.

Sweeping a steering coefficient ``r`` and measuring a behaviour ``B(r)`` and a helpfulness
``P(r)`` at each ``r``, the model (see :mod:`steerlab.stats.fit_results`) predicts a tanh for
behaviour and a parabolic bound for helpfulness, with ``B0`` and ``P0`` the values at ``r = 0``.
Near ``r = 0`` behaviour therefore changes linearly while helpfulness falls quadratically, so
small coefficients buy alignment more cheaply than they cost helpfulness. This module fits both
curves, checks the linear-versus-quadratic claim locally and finds the range of coefficients
where the alignment gained exceeds the helpfulness lost.

Every function is pure: arrays and numbers in, frozen dataclasses out. Input that cannot be
fitted meaningfully raises :class:`~steerlab.stats.fit_results.FitError` with a one-line message.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import OptimizeWarning, brentq, curve_fit

from steerlab.stats.fit_results import (
    P0_CLIP,
    BehaviorFit,
    CostEffectiveRange,
    FitError,
    HelpfulnessFit,
    PolyComparison,
    Source,
    TradeoffFit,
    artanh_b0,
    behavior_curve,
    clip_p0,
    helpfulness_curve,
)
from steerlab.validation import check_int

__all__ = [
    "compare_linear_quadratic",
    "cost_effective_range",
    "fit_behavior",
    "fit_helpfulness",
    "fit_tradeoff",
]

_FLAT_TOLERANCE = 1e-9
_MIN_POINTS = 3
_DEFAULT_MAX_EVALUATIONS = 2000


def fit_behavior(
    coefficients: ArrayLike,
    values: ArrayLike,
    b0: float | None = None,
    *,
    max_evaluations: int = _DEFAULT_MAX_EVALUATIONS,
) -> BehaviorFit:
    """Fit ``B(r) = tanh(Δλ·r + artanh B0)`` to a behaviour sweep.

    ``B0`` is ``b0`` when given; otherwise the mean of the values at ``r = 0`` when the sweep
    has such points; otherwise a free parameter fitted with ``Δλ``. ``B0`` is clipped into
    ``(-1 + 1e-6, 1 - 1e-6)`` before ``artanh``.

    Args:
        coefficients: Steering coefficients ``r``, one per value.
        values: Behaviour expectations ``B(r)`` in ``[-1, 1]``.
        b0: Behaviour at ``r = 0``, if known.
        max_evaluations: Cap on model evaluations by the optimiser.

    Returns:
        The fitted curve.

    Raises:
        FitError: Fewer than 3 points, mismatched lengths, non-finite input, values outside
            ``[-1, 1]``, a flat curve, or a fit that does not converge.
    """
    r, y = _validated_sweep(coefficients, values, "behaviour", -1.0, 1.0)
    b0_value, source = _baseline(r, y, b0, "b0", -1.0, 1.0)

    if b0_value is not None:
        c = artanh_b0(b0_value)
        z = np.arctanh(np.clip(y, -0.999, 0.999))
        guess = float(np.sum(r * (z - c)) / max(float(np.sum(r * r)), 1e-300))

        def model_fixed(x: np.ndarray, dl: float) -> np.ndarray:
            return behavior_curve(x, dl, c)

        params, cov = _curve_fit(model_fixed, r, y, [guess], None, max_evaluations, "behaviour")
        delta_lambda = float(params[0])
        fitted_b0 = b0_value
    else:
        z = np.arctanh(np.clip(y, -0.999, 0.999))
        slope, intercept = np.polyfit(r, z, 1)
        params, cov = _curve_fit(
            behavior_curve,
            r,
            y,
            [float(slope), float(intercept)],
            None,
            max_evaluations,
            "behaviour",
        )
        delta_lambda = float(params[0])
        fitted_b0 = float(np.tanh(params[1]))

    predicted = behavior_curve(r, delta_lambda, artanh_b0(fitted_b0))
    return BehaviorFit(
        b0=fitted_b0,
        delta_lambda=delta_lambda,
        delta_lambda_stderr=_stderrs(cov)[0],
        r_squared=_r_squared(y, predicted),
        n_points=int(r.size),
        b0_source=source,
    )


def fit_helpfulness(
    coefficients: ArrayLike,
    values: ArrayLike,
    p0: float | None = None,
    *,
    max_evaluations: int = _DEFAULT_MAX_EVALUATIONS,
) -> HelpfulnessFit:
    """Fit ``P(r) = P0 / (P0 + (1 - P0)·a·(1 + k·r²))`` to a helpfulness sweep.

    ``P0`` follows the convention of :func:`fit_behavior`: ``p0`` when given, else the mean of
    the values at ``r = 0``, else fitted. With ``P0`` fixed, ``a > 0`` and ``k >= 0`` are fitted;
    with ``P0`` fitted, ``a`` is held at 1 (``a`` and ``P0`` are not separately identifiable).
    ``P0`` is clipped into ``(1e-6, 1 - 1e-6)`` inside the model.

    Args:
        coefficients: Steering coefficients ``r``, one per value.
        values: Helpfulness ``P(r)`` in ``[0, 1]``.
        p0: Helpfulness at ``r = 0``, if known.
        max_evaluations: Cap on model evaluations by the optimiser.

    Returns:
        The fitted curve.

    Raises:
        FitError: Fewer than 3 points, mismatched lengths, non-finite input, values outside
            ``[0, 1]``, a flat curve, or a fit that does not converge.
    """
    r, y = _validated_sweep(coefficients, values, "helpfulness", 0.0, 1.0)
    p0_value, source = _baseline(r, y, p0, "p0", 0.0, 1.0)

    # Initial guess from the linearisation 1/P - 1 = q·(1 + k·r²), q = (1 - P0)·a / P0.
    odds = 1.0 / np.clip(y, 1e-3, 1.0 - 1e-3) - 1.0
    slope, intercept = np.polyfit(r * r, odds, 1)
    q0 = float(intercept) if intercept > 1e-6 else float(np.median(odds))
    q0 = max(q0, 1e-6)
    k0 = float(slope) / q0 if slope > 0 else 1e-3
    k0 = max(k0, 1e-6)

    if p0_value is not None:
        pc = clip_p0(p0_value)
        a0 = q0 * pc / (1.0 - pc)

        def model_fixed(x: np.ndarray, a: float, k: float) -> np.ndarray:
            return helpfulness_curve(x, pc, a, k)

        params, cov = _curve_fit(
            model_fixed,
            r,
            y,
            [a0, k0],
            ([1e-12, 0.0], [np.inf, np.inf]),
            max_evaluations,
            "helpfulness",
        )
        a, k = float(params[0]), float(params[1])
        a_se, k_se = _stderrs(cov)
        fitted_p0 = p0_value
    else:

        def model_free(x: np.ndarray, p: float, k: float) -> np.ndarray:
            return helpfulness_curve(x, p, 1.0, k)

        p_guess = min(max(1.0 / (1.0 + q0), P0_CLIP), 1.0 - P0_CLIP)
        params, cov = _curve_fit(
            model_free,
            r,
            y,
            [p_guess, k0],
            ([P0_CLIP, 0.0], [1.0 - P0_CLIP, np.inf]),
            max_evaluations,
            "helpfulness",
        )
        fitted_p0, k = float(params[0]), float(params[1])
        a, a_se = 1.0, 0.0
        k_se = _stderrs(cov)[1]

    lsb = math.sqrt(2.0 * k)
    lsb_se = k_se / lsb if lsb > 0 else math.inf
    predicted = helpfulness_curve(r, clip_p0(fitted_p0), a, k)
    return HelpfulnessFit(
        p0=fitted_p0,
        a=a,
        k=k,
        lambda_sigma_beta=lsb,
        a_stderr=a_se,
        k_stderr=k_se,
        lambda_sigma_beta_stderr=lsb_se,
        r_squared=_r_squared(y, predicted),
        n_points=int(r.size),
        p0_source=source,
    )


def compare_linear_quadratic(
    coefficients: ArrayLike,
    values: ArrayLike,
    window: float | None = None,
) -> PolyComparison:
    """Fit ``c0 + c1·r`` and ``c0 + c1·r + c2·r²`` near ``r = 0`` and say which fits better.

    The better model is the one with the higher adjusted R² (ties go to the linear model); AIC
    is reported too but does not decide.

    Args:
        coefficients: Steering coefficients ``r``, one per value.
        values: Measured values (any finite numbers).
        window: Use the points with ``|r| <= window``. Default: half the largest ``|r|`` (the
            middle half of a sweep symmetric about 0), widened if needed to take in the 4 points
            closest to ``r = 0``.

    Returns:
        Both fits and the verdict.

    Raises:
        FitError: Fewer than 3 points, mismatched lengths, non-finite input, a non-positive
            window, fewer than 4 points or 3 distinct coefficients in the window, or values
            that are flat inside it.
    """
    r, y = _validated_sweep(coefficients, values, "value", -np.inf, np.inf)
    distance = np.abs(r)
    if window is None:
        needed = min(4, r.size)
        window_value = max(0.5 * float(distance.max()), float(np.sort(distance)[needed - 1]))
    else:
        window_value = float(window)
        if not math.isfinite(window_value) or window_value <= 0:
            raise FitError(f"window must be a positive finite number, got {window!r}")

    inside = distance <= window_value
    rw, yw = r[inside], y[inside]
    n = int(rw.size)
    if n < 4:
        raise FitError(
            f"need at least 4 points with |r| <= {window_value:g} to compare linear and "
            f"quadratic fits, got {n}"
        )
    if np.unique(rw).size < 3:
        raise FitError(
            f"need at least 3 distinct coefficients with |r| <= {window_value:g}, "
            f"got {np.unique(rw).size}"
        )
    if float(np.ptp(yw)) <= _FLAT_TOLERANCE:
        raise FitError(f"flat curve, nothing to fit (all values within |r| <= {window_value:g})")

    lin, lin_rss = _polyfit(rw, yw, 1)
    quad, quad_rss = _polyfit(rw, yw, 2)
    tss = float(np.sum((yw - yw.mean()) ** 2))
    lin_r2 = 1.0 - lin_rss / tss
    quad_r2 = 1.0 - quad_rss / tss
    lin_adj = 1.0 - (1.0 - lin_r2) * (n - 1) / (n - 2)
    quad_adj = 1.0 - (1.0 - quad_r2) * (n - 1) / (n - 3)
    return PolyComparison(
        window=window_value,
        n_points=n,
        linear_coefficients=(lin[0], lin[1]),
        quadratic_coefficients=(quad[0], quad[1], quad[2]),
        linear_r_squared=lin_r2,
        quadratic_r_squared=quad_r2,
        linear_adjusted_r_squared=lin_adj,
        quadratic_adjusted_r_squared=quad_adj,
        linear_aic=_aic(lin_rss, n, 2),
        quadratic_aic=_aic(quad_rss, n, 3),
        better="quadratic" if quad_adj > lin_adj else "linear",
    )


def cost_effective_range(
    behavior_fit: BehaviorFit,
    helpfulness_fit: HelpfulnessFit,
    r_min: float,
    r_max: float,
    n: int = 2001,
    sign: int = +1,
) -> CostEffectiveRange:
    """Find the coefficients beside ``r = 0`` where alignment gained exceeds helpfulness lost.

    On a grid of ``n`` points over ``[r_min, r_max]`` (plus ``r = 0``), gain is
    ``G(r) = (B(r) - B(0)) / 2`` and loss ``L(r) = P(0) - P(r)``, taken from the fitted curves
    (so ``G(0) = L(0) = 0``; ``P(0)`` equals ``P0`` when ``a = 1``). Walking away from ``r = 0``
    on the side ``sign``, the range is the run of grid points with ``G > L`` that starts at the
    first point beside 0; its outer end is refined by root finding when ``G - L`` changes sign
    inside the grid. A range that ends at ``r = 0`` on one side is open there.

    Args:
        behavior_fit: Fitted behaviour curve.
        helpfulness_fit: Fitted helpfulness curve.
        r_min: Lower end of the grid (``<= 0``).
        r_max: Upper end of the grid (``>= 0``).
        n: Number of grid points (at least 3).
        sign: ``+1`` when positive coefficients increase alignment, ``-1`` when negative ones do.

    Returns:
        The range, or one with ``empty=True`` when there is none.

    Raises:
        FitError: ``sign`` not ±1, ``n`` below 3, a non-finite or unordered grid, a grid that
            does not contain 0, or no grid on the side ``sign``.
    """
    if sign not in (1, -1):
        raise FitError(f"sign must be +1 or -1, got {sign!r}")
    n = check_int(n, "n", minimum=3, error=FitError)
    lo, hi = float(r_min), float(r_max)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise FitError(f"r_min and r_max must be finite, got {r_min!r} and {r_max!r}")
    if not lo < hi:
        raise FitError(f"r_min must be below r_max, got {lo:g} and {hi:g}")
    if lo > 0 or hi < 0:
        raise FitError(f"the grid [{lo:g}, {hi:g}] must contain r = 0")
    side_end = hi if sign == 1 else lo
    if side_end == 0:
        raise FitError(f"the grid [{lo:g}, {hi:g}] has no coefficients on the side sign={sign:+d}")

    b_zero = float(behavior_fit.predict(np.array(0.0)))
    p_zero = float(helpfulness_fit.predict(np.array(0.0)))

    def net(x: np.ndarray) -> np.ndarray:
        gain = (behavior_fit.predict(x) - b_zero) / 2.0
        loss = p_zero - helpfulness_fit.predict(x)
        return gain - loss

    grid = np.union1d(np.linspace(lo, hi, int(n)), [0.0])
    # Points on the chosen side, ordered outwards from r = 0 (excluding 0 itself).
    side = grid[grid > 0] if sign == 1 else grid[grid < 0][::-1]
    values = net(side)
    positive = values > 0

    def result(**fields: Any) -> CostEffectiveRange:
        return CostEffectiveRange(sign=sign, r_min=lo, r_max=hi, n=int(n), **fields)

    if not positive[0]:
        return result(
            empty=True,
            lower=None,
            upper=None,
            truncated=False,
            best_r=None,
            best_net_gain=None,
            gain_at_best=None,
            loss_at_best=None,
        )

    first_bad = int(np.argmin(positive)) if not positive.all() else side.size
    run = side[:first_bad]
    truncated = first_bad == side.size
    end = float(run[-1])
    if not truncated:
        outside = float(side[first_bad])
        if values[first_bad] < 0:
            end = float(brentq(lambda x: float(net(np.array(x))), end, outside))
        else:
            end = outside

    best = int(np.argmax(values[:first_bad]))
    best_r = float(run[best])
    gain = float((behavior_fit.predict(np.array(best_r)) - b_zero) / 2.0)
    loss = float(p_zero - helpfulness_fit.predict(np.array(best_r)))
    lower, upper = (0.0, end) if sign == 1 else (end, 0.0)
    return result(
        empty=False,
        lower=lower,
        upper=upper,
        truncated=truncated,
        best_r=best_r,
        best_net_gain=gain - loss,
        gain_at_best=gain,
        loss_at_best=loss,
    )


def fit_tradeoff(
    coefficients: ArrayLike,
    behavior_values: ArrayLike,
    helpfulness_values: ArrayLike,
    *,
    b0: float | None = None,
    p0: float | None = None,
    window: float | None = None,
    sign: int = +1,
    n: int = 2001,
) -> TradeoffFit:
    """Fit both curves of a sweep, compare them with polynomials and find the cheap range.

    The cost-effective range is searched on ``[min(r, 0), max(r, 0)]`` over the coefficients.

    Args:
        coefficients: Steering coefficients ``r``, shared by both measurements.
        behavior_values: Behaviour expectations ``B(r)`` in ``[-1, 1]``.
        helpfulness_values: Helpfulness ``P(r)`` in ``[0, 1]``.
        b0: Behaviour at ``r = 0``, if known (see :func:`fit_behavior`).
        p0: Helpfulness at ``r = 0``, if known (see :func:`fit_helpfulness`).
        window: Window for the polynomial comparisons (see :func:`compare_linear_quadratic`).
        sign: Side of ``r = 0`` whose coefficients increase alignment (``+1`` or ``-1``).
        n: Number of grid points for the cost-effective range.

    Returns:
        All fits for the sweep.

    Raises:
        FitError: Whenever one of the fits does.
    """
    behavior = fit_behavior(coefficients, behavior_values, b0)
    helpfulness = fit_helpfulness(coefficients, helpfulness_values, p0)
    behavior_poly = compare_linear_quadratic(coefficients, behavior_values, window)
    helpfulness_poly = compare_linear_quadratic(coefficients, helpfulness_values, window)
    r = np.asarray(coefficients, dtype=float)
    cost_effective = cost_effective_range(
        behavior, helpfulness, min(float(r.min()), 0.0), max(float(r.max()), 0.0), n, sign
    )
    return TradeoffFit(
        behavior=behavior,
        helpfulness=helpfulness,
        behavior_poly=behavior_poly,
        helpfulness_poly=helpfulness_poly,
        cost_effective=cost_effective,
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _validated_sweep(
    coefficients: ArrayLike, values: ArrayLike, what: str, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """Check a sweep and return it as two 1-D float arrays."""
    try:
        r = np.asarray(coefficients, dtype=float)
        y = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise FitError(f"coefficients and {what} values must be numbers: {exc}") from None
    if r.ndim != 1 or y.ndim != 1:
        raise FitError(
            f"coefficients and {what} values must be 1-D, got shapes {r.shape} and {y.shape}"
        )
    if r.size != y.size:
        raise FitError(
            f"coefficients and {what} values differ in length: {r.size} coefficients, "
            f"{y.size} values"
        )
    if r.size < _MIN_POINTS:
        raise FitError(f"need at least {_MIN_POINTS} points to fit, got {r.size}")
    for name, array in (("coefficient", r), (f"{what} value", y)):
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise FitError(f"non-finite {name} {array[bad[0]]} at index {bad[0]}")
    outside = np.flatnonzero((y < low) | (y > high))
    if outside.size:
        i = int(outside[0])
        raise FitError(
            f"{what} value {y[i]:g} at r={r[i]:g} (index {i}) is outside [{low:g}, {high:g}]"
        )
    if np.unique(r).size < 2:
        raise FitError(f"coefficients must take at least 2 distinct values, all are {r[0]:g}")
    if float(np.ptp(y)) <= _FLAT_TOLERANCE:
        raise FitError(f"flat curve, nothing to fit (all {what} values are {y[0]:g})")
    return r, y


def _baseline(
    r: np.ndarray, y: np.ndarray, given: float | None, name: str, low: float, high: float
) -> tuple[float | None, Source]:
    """The value at ``r = 0``: given, measured, or ``None`` (to be fitted)."""
    if given is not None:
        value = float(given)
        if not math.isfinite(value) or not low <= value <= high:
            raise FitError(f"{name} must be a finite number in [{low:g}, {high:g}], got {given!r}")
        return value, "given"
    at_zero = r == 0
    if at_zero.any():
        return float(np.mean(y[at_zero])), "measured"
    return None, "fitted"


def _curve_fit(
    model: Callable[..., np.ndarray],
    r: np.ndarray,
    y: np.ndarray,
    guess: list[float],
    bounds: tuple[list[float], list[float]] | None,
    max_evaluations: int,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``curve_fit``, turning its failures into :class:`FitError`."""
    max_evaluations = check_int(max_evaluations, "max_evaluations", minimum=1, error=FitError)
    kwargs: dict[str, Any] = (
        {"maxfev": int(max_evaluations)}
        if bounds is None
        else {"bounds": bounds, "max_nfev": int(max_evaluations)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            params, cov = curve_fit(model, r, y, p0=guess, **kwargs)
        except RuntimeError as exc:
            message = " ".join(str(exc).split())
            raise FitError(f"{what} fit did not converge: {message}") from None
        except ValueError as exc:
            message = " ".join(str(exc).split())
            raise FitError(f"{what} fit failed: {message}") from None
    params = np.asarray(params, dtype=float)
    if not np.all(np.isfinite(params)):
        raise FitError(f"{what} fit did not converge: non-finite parameters {params.tolist()}")
    return params, np.atleast_2d(np.asarray(cov, dtype=float))


def _stderrs(cov: np.ndarray) -> list[float]:
    """Standard errors from a covariance matrix (``inf`` where it is unknown or negative)."""
    diagonal = np.diag(cov)
    return [math.sqrt(v) if math.isfinite(v) and v >= 0 else math.inf for v in diagonal]


def _r_squared(y: np.ndarray, predicted: np.ndarray) -> float:
    tss = float(np.sum((y - y.mean()) ** 2))
    rss = float(np.sum((y - predicted) ** 2))
    return 1.0 - rss / tss


def _polyfit(r: np.ndarray, y: np.ndarray, degree: int) -> tuple[tuple[float, ...], float]:
    """Least-squares polynomial, coefficients in increasing power, and its residual sum."""
    design = np.vander(r, degree + 1, increasing=True)
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    rss = float(np.sum((y - design @ coefficients) ** 2))
    return tuple(float(c) for c in coefficients), rss


def _aic(rss: float, n: int, n_coefficients: int) -> float:
    return n * math.log(max(rss, 1e-300) / n) + 2.0 * n_coefficients
