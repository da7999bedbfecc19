"""Typed results of the alignment/helpfulness trade-off fits, and the model's two curves.

The paper "Tradeoffs between alignment and helpfulness in language models with steering
methods" predicts, for a steering coefficient ``r``, a behaviour expectation
``B(r) = P(aligned) - P(misaligned)`` in ``[-1, 1]`` and a helpfulness ``P(r)`` in ``[0, 1]``::

    B(r) = tanh(Δλ·r + artanh B0)
    P(r) = P0 / (P0 + (1 - P0)·a·(1 + k·r²)),     λσβ = sqrt(2k)

This module holds those two curves (:func:`behavior_curve`, :func:`helpfulness_curve`) and the
frozen dataclasses that :mod:`steerlab.stats.fitting` returns. Each result can ``predict`` its
curve and turns into the JSON-able dict of ``fit.json`` (``to_dict``: non-finite numbers become
``None``); fitted curves also say themselves in one line (``summary``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from steerlab.errors import SpecError

__all__ = [
    "BehaviorFit",
    "CostEffectiveRange",
    "FitError",
    "HelpfulnessFit",
    "PolyComparison",
    "Source",
    "TradeoffFit",
    "behavior_curve",
    "helpfulness_curve",
]

B0_CLIP = 1e-6
"""``B0`` is clipped into ``(-1 + B0_CLIP, 1 - B0_CLIP)`` before ``artanh``."""

P0_CLIP = 1e-6
"""``P0`` is clipped into ``(P0_CLIP, 1 - P0_CLIP)`` so the helpfulness model stays defined."""

Source = Literal["given", "measured", "fitted"]
"""Where a curve's value at ``r = 0`` came from: an argument, the data at 0, or the fit."""


class FitError(SpecError):
    """A sweep that cannot be fitted meaningfully (too few points, out of range, flat...)."""


def behavior_curve(r: np.ndarray, delta_lambda: float, artanh_b0: float) -> np.ndarray:
    """``B(r) = tanh(Δλ·r + artanh B0)``, with ``artanh B0`` given (see :func:`artanh_b0`)."""
    return np.tanh(delta_lambda * r + artanh_b0)


def helpfulness_curve(r: np.ndarray, p0: float, a: float, k: float) -> np.ndarray:
    """``P(r) = P0 / (P0 + (1 - P0)·a·(1 + k·r²))``, with ``P0`` already clipped."""
    return p0 / (p0 + (1.0 - p0) * a * (1.0 + k * r * r))


def artanh_b0(b0: float) -> float:
    """``artanh B0`` with ``B0`` clipped into ``(-1, 1)`` by :data:`B0_CLIP`."""
    return float(np.arctanh(np.clip(b0, -1.0 + B0_CLIP, 1.0 - B0_CLIP)))


def clip_p0(p0: float) -> float:
    """``P0`` clipped into ``(0, 1)`` by :data:`P0_CLIP`."""
    return float(np.clip(p0, P0_CLIP, 1.0 - P0_CLIP))


def json_float(value: float | None) -> float | None:
    """``value`` as a float for JSON; ``None`` when it is ``None`` or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class BehaviorFit:
    """Fitted behaviour curve ``B(r) = tanh(Δλ·r + artanh B0)``.

    Attributes:
        b0: Behaviour expectation at ``r = 0``.
        delta_lambda: Fitted slope ``Δλ`` in artanh space (per unit of coefficient).
        delta_lambda_stderr: Standard error of ``Δλ`` from the fit covariance (``inf`` when the
            covariance could not be estimated).
        r_squared: Coefficient of determination of the fitted curve on the data.
        n_points: Number of (coefficient, value) points fitted.
        b0_source: ``"given"`` (argument), ``"measured"`` (mean of the values at ``r = 0``) or
            ``"fitted"`` (free parameter, when no point lies at ``r = 0``).
    """

    b0: float
    delta_lambda: float
    delta_lambda_stderr: float
    r_squared: float
    n_points: int
    b0_source: Source

    def predict(self, r: ArrayLike) -> np.ndarray:
        """Evaluate the fitted curve.

        Args:
            r: Steering coefficient(s).

        Returns:
            ``B(r)`` as a float array of the same shape as ``r``.
        """
        return behavior_curve(np.asarray(r, dtype=float), self.delta_lambda, artanh_b0(self.b0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (non-finite numbers become ``None``)."""
        return {
            "b0": json_float(self.b0),
            "delta_lambda": json_float(self.delta_lambda),
            "delta_lambda_stderr": json_float(self.delta_lambda_stderr),
            "r_squared": json_float(self.r_squared),
            "n_points": int(self.n_points),
            "b0_source": self.b0_source,
        }

    def summary(self) -> str:
        """One line: the fitted curve and its parameters."""
        return (
            f"behaviour fit  B(r) = tanh(Δλ·r + artanh B0): Δλ = {self.delta_lambda:.4g}, "
            f"B0 = {self.b0:.3f}, R² = {self.r_squared:.3f}"
        )


@dataclass(frozen=True)
class HelpfulnessFit:
    """Fitted helpfulness curve ``P(r) = P0 / (P0 + (1 - P0)·a·(1 + k·r²))``.

    Only ``(1 - P0)·a / P0`` and ``k`` are identifiable from a sweep, so with ``P0`` fixed ``a``
    absorbs any mismatch between ``P0`` and the curve at ``r = 0`` (``a ≈ 1`` when ``P0`` is
    measured there); when ``P0`` is fitted, ``a`` is held at 1.

    Attributes:
        p0: Helpfulness at ``r = 0`` (the model's ``P0``).
        a: Fitted ``a = α(1 - ε)``.
        k: Fitted curvature ``k >= 0``.
        lambda_sigma_beta: ``λσβ = sqrt(2k)``.
        a_stderr: Standard error of ``a`` (0 when ``a`` was held fixed, ``inf`` if unknown).
        k_stderr: Standard error of ``k`` (``inf`` when unknown).
        lambda_sigma_beta_stderr: Standard error of ``λσβ`` by the delta method.
        r_squared: Coefficient of determination of the fitted curve on the data.
        n_points: Number of (coefficient, value) points fitted.
        p0_source: ``"given"``, ``"measured"`` or ``"fitted"``, as for :class:`BehaviorFit`.
    """

    p0: float
    a: float
    k: float
    lambda_sigma_beta: float
    a_stderr: float
    k_stderr: float
    lambda_sigma_beta_stderr: float
    r_squared: float
    n_points: int
    p0_source: Source

    def predict(self, r: ArrayLike) -> np.ndarray:
        """Evaluate the fitted curve.

        Args:
            r: Steering coefficient(s).

        Returns:
            ``P(r)`` as a float array of the same shape as ``r``.
        """
        return helpfulness_curve(np.asarray(r, dtype=float), clip_p0(self.p0), self.a, self.k)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (non-finite numbers become ``None``)."""
        return {
            "p0": json_float(self.p0),
            "a": json_float(self.a),
            "k": json_float(self.k),
            "lambda_sigma_beta": json_float(self.lambda_sigma_beta),
            "a_stderr": json_float(self.a_stderr),
            "k_stderr": json_float(self.k_stderr),
            "lambda_sigma_beta_stderr": json_float(self.lambda_sigma_beta_stderr),
            "r_squared": json_float(self.r_squared),
            "n_points": int(self.n_points),
            "p0_source": self.p0_source,
        }

    def summary(self) -> str:
        """One line: the fitted curve and its parameters."""
        return (
            f"helpfulness fit P(r) = P0/(P0+(1-P0)·a·(1+k·r²)): a = {self.a:.3g}, "
            f"λσβ = {self.lambda_sigma_beta:.4g}, R² = {self.r_squared:.3f}"
        )


@dataclass(frozen=True)
class PolyComparison:
    """Linear versus quadratic polynomial fits of a curve near ``r = 0``.

    Coefficients are in increasing order of power: ``y = c0 + c1·r (+ c2·r²)``. The better model
    is chosen by adjusted R² (ties go to the linear model); AIC values are reported alongside
    for reference (``n·ln(RSS/n) + 2·(number of coefficients)``).

    Attributes:
        window: Points with ``|r| <= window`` were used.
        n_points: Number of points inside the window.
        linear_coefficients: ``(c0, c1)``.
        quadratic_coefficients: ``(c0, c1, c2)``.
        linear_r_squared: R² of the linear fit.
        quadratic_r_squared: R² of the quadratic fit.
        linear_adjusted_r_squared: Adjusted R² of the linear fit.
        quadratic_adjusted_r_squared: Adjusted R² of the quadratic fit.
        linear_aic: AIC of the linear fit.
        quadratic_aic: AIC of the quadratic fit.
        better: ``"linear"`` or ``"quadratic"``, by adjusted R².
    """

    window: float
    n_points: int
    linear_coefficients: tuple[float, float]
    quadratic_coefficients: tuple[float, float, float]
    linear_r_squared: float
    quadratic_r_squared: float
    linear_adjusted_r_squared: float
    quadratic_adjusted_r_squared: float
    linear_aic: float
    quadratic_aic: float
    better: Literal["linear", "quadratic"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (non-finite numbers become ``None``)."""
        return {
            "window": json_float(self.window),
            "n_points": int(self.n_points),
            "linear_coefficients": [json_float(c) for c in self.linear_coefficients],
            "quadratic_coefficients": [json_float(c) for c in self.quadratic_coefficients],
            "linear_r_squared": json_float(self.linear_r_squared),
            "quadratic_r_squared": json_float(self.quadratic_r_squared),
            "linear_adjusted_r_squared": json_float(self.linear_adjusted_r_squared),
            "quadratic_adjusted_r_squared": json_float(self.quadratic_adjusted_r_squared),
            "linear_aic": json_float(self.linear_aic),
            "quadratic_aic": json_float(self.quadratic_aic),
            "better": self.better,
            "criterion": "adjusted_r_squared",
        }


@dataclass(frozen=True)
class CostEffectiveRange:
    """Coefficients next to ``r = 0`` where alignment gained exceeds helpfulness lost.

    Gain is ``G(r) = (B(r) - B(0)) / 2`` (the change in ``P(aligned)``, since
    ``B = P(aligned) - P(misaligned)``); loss is ``L(r) = P(0) - P(r)``, both from the fitted
    curves. The range is open at ``r = 0``, where ``G = L = 0``.

    Attributes:
        empty: True when ``G <= L`` already at the first grid point beside ``r = 0``.
        lower: Lower end of the range (``0.0`` when ``sign = +1``); ``None`` when empty.
        upper: Upper end of the range (``0.0`` when ``sign = -1``); ``None`` when empty.
        truncated: True when ``G > L`` up to the end of the grid, so the true range may be wider.
        best_r: Coefficient maximising ``G - L`` within the range; ``None`` when empty.
        best_net_gain: ``G - L`` at ``best_r``; ``None`` when empty.
        gain_at_best: ``G`` at ``best_r``; ``None`` when empty.
        loss_at_best: ``L`` at ``best_r``; ``None`` when empty.
        sign: ``+1`` (search ``r >= 0``) or ``-1`` (search ``r <= 0``).
        r_min: Lower end of the searched grid.
        r_max: Upper end of the searched grid.
        n: Number of grid points on ``[r_min, r_max]``.
    """

    empty: bool
    lower: float | None
    upper: float | None
    truncated: bool
    best_r: float | None
    best_net_gain: float | None
    gain_at_best: float | None
    loss_at_best: float | None
    sign: int
    r_min: float
    r_max: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (non-finite numbers become ``None``)."""
        return {
            "empty": bool(self.empty),
            "lower": json_float(self.lower),
            "upper": json_float(self.upper),
            "truncated": bool(self.truncated),
            "best_r": json_float(self.best_r),
            "best_net_gain": json_float(self.best_net_gain),
            "gain_at_best": json_float(self.gain_at_best),
            "loss_at_best": json_float(self.loss_at_best),
            "sign": int(self.sign),
            "r_min": json_float(self.r_min),
            "r_max": json_float(self.r_max),
            "n": int(self.n),
        }

    def summary(self) -> str:
        """One line: the range and its best coefficient, or that there is none."""
        if self.empty or self.lower is None or self.upper is None or self.best_r is None:
            return "cost-effective range: none (helpfulness falls faster than alignment rises)"
        return (
            "cost-effective range (alignment gain > helpfulness loss): "
            f"r in ({self.lower:.3g}, {self.upper:.3g}), best r = {self.best_r:.3g}"
        )


@dataclass(frozen=True)
class TradeoffFit:
    """Everything :func:`fit_tradeoff` computes for one steering sweep.

    Attributes:
        behavior: Fit of the behaviour curve.
        helpfulness: Fit of the helpfulness curve.
        behavior_poly: Linear versus quadratic comparison of behaviour near ``r = 0``.
        helpfulness_poly: Linear versus quadratic comparison of helpfulness near ``r = 0``.
        cost_effective: Range of coefficients where alignment gained exceeds helpfulness lost.
    """

    behavior: BehaviorFit
    helpfulness: HelpfulnessFit
    behavior_poly: PolyComparison
    helpfulness_poly: PolyComparison
    cost_effective: CostEffectiveRange

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view of all parts."""
        return {
            "behavior": self.behavior.to_dict(),
            "helpfulness": self.helpfulness.to_dict(),
            "behavior_poly": self.behavior_poly.to_dict(),
            "helpfulness_poly": self.helpfulness_poly.to_dict(),
            "cost_effective": self.cost_effective.to_dict(),
        }
