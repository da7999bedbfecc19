"""The pure half of calibration: the coefficient grid, the fits and the coefficient per sign.

Numbers in, frozen dataclasses out; no model. :func:`recommend` takes a calibration sweep
(coefficients of both signs and 0, the behaviour ``B(c)`` and the perplexity ``ppl(c)`` on
general text at each) and decides, per sign, which coefficient to recommend:

1. Fluency is the geometric-mean token probability ``F(c) = 1 / ppl(c)`` (a probability, as
   the helpfulness model wants). The trade-off fits of :mod:`steerlab.stats.fitting` are
   reused as they are: the tanh behaviour fit on ``B`` and the parabolic-bound fit on ``F``
   (``ppl(c) - 1`` quadratic in ``c``), then per sign the cost-effective range, where the
   behaviour gained in that sign's direction exceeds the fluency lost. For the negative
   sign the behaviour fit is mirrored (``B -> -B``), so that "gain" means moving toward the
   pairs' negative side there.
2. Walking out from 0 on that sign's side of the grid, the measured perplexity ratio
   ``ppl(c) / ppl(0)`` must stay within the bound; the first point beyond it ends the walk
   (a later point that happens to pass does not count).
3. The recommendation is the largest such grid coefficient inside the cost-effective range
   when that range is non-empty; with no range (empty, or a fit that failed) the perplexity
   bound alone decides, and the reason says so. None when no grid coefficient qualifies.

Measured this way the fluency lost is small next to the behaviour gained (``F`` is a
per-token probability, 0.05 for the embedded model on general text), so the range usually
spans the grid and the perplexity bound decides; the range cuts in when the behaviour barely
moves or moves the wrong way. Grid points are recommended, never interpolated: each one was
measured. :func:`refinement` says where one more measured point per sign helps most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from steerlab.errors import SpecError
from steerlab.stats.fit_results import (
    BehaviorFit,
    CostEffectiveRange,
    FitError,
    HelpfulnessFit,
    json_float,
)
from steerlab.stats.fitting import cost_effective_range, fit_behavior, fit_helpfulness
from steerlab.validation import check_number

__all__ = [
    "DEFAULT_PERPLEXITY_BOUND",
    "GRID_STEPS",
    "GRID_TOTAL_PUSH",
    "CalibrationFit",
    "SideRecommendation",
    "coefficient_grid",
    "default_magnitudes",
    "recommend",
    "recommend_side",
    "refinement",
]

DEFAULT_PERPLEXITY_BOUND = 1.5
"""Largest perplexity on general text, as a multiple of the unsteered model's, that a
recommended coefficient may cause. Measured on the embedded model (happy/sad ``pca_diff``
vector, layers 12-18, greedy continuations of three everyday prompts): at ratios up to 1.4
every continuation stayed fluent and visibly changed mood at both signs; at 1.5 the sad side
began to repeat itself; at 1.8 the happy side was still fluent; at 3.3 and beyond both sides
fell apart (loops of emoji, "The sky is in the sky!"). So 1.5 keeps both signs fluent."""

GRID_TOTAL_PUSH = 0.8
"""The largest default coefficient summed over the steered layers, in fractions of a layer's
activation norm: the default grid of ``n`` layers reaches ``GRID_TOTAL_PUSH / n`` per layer.
Pushes at several layers add up in the residual stream: on the embedded model (happy/sad
vector) the perplexity of general text grew 1.5-fold at a summed push between 0.2 and 0.8,
most often near 0.4, whether 1, 7 or 30 layers were steered, so this grid (a summed push of
0.05 to 0.8) brackets that point on both sides."""

GRID_STEPS = 5
"""Magnitudes per sign of the default grid, each half the next (0 is added)."""

_TOLERANCE = 1e-9


def default_magnitudes(n_layers: int) -> tuple[float, ...]:
    """The default grid's magnitudes for ``n_layers`` steered layers (``scale="norm"``).

    ``GRID_TOTAL_PUSH / n_layers`` halved ``GRID_STEPS - 1`` times, ascending, 4 significant
    digits: 1 layer gives 0.05, 0.1, 0.2, 0.4, 0.8.
    """
    if n_layers < 1:
        raise SpecError(f"need at least one steered layer, got {n_layers}")
    top = GRID_TOTAL_PUSH / n_layers
    return tuple(float(f"{top / 2**k:.4g}") for k in reversed(range(GRID_STEPS)))


def coefficient_grid(magnitudes: Sequence[float]) -> tuple[float, ...]:
    """Both signs of ``magnitudes`` plus 0, ascending.

    Raises:
        SpecError: no magnitude, one that is not a finite number above 0, or duplicates.
    """
    values = [check_number(m, "grid magnitude", low=0.0, low_open=True) for m in magnitudes]
    if not values:
        raise SpecError("the calibration grid is empty: give at least one magnitude")
    if len(set(values)) != len(values):
        raise SpecError(f"the calibration grid repeats a magnitude: {sorted(values)}")
    positive = sorted(float(v) for v in values)
    return (*(-v for v in reversed(positive)), 0.0, *positive)


@dataclass(frozen=True)
class SideRecommendation:
    """The recommendation for one sign of the coefficient.

    Attributes:
        sign: ``+1`` or ``-1``.
        coefficient: the recommended grid coefficient (of this sign), or None.
        perplexity_limit: the largest grid coefficient walking out from 0 whose perplexity
            ratio stays within the bound; None when the first one beside 0 exceeds it.
        bound_reached: whether a grid point of this side exceeded the bound (False: the
            whole side passed, and a wider grid might allow more).
        cost_effective: the cost-effective range on this side, or None without the fits.
        perplexity_ratio: ``ppl(c) / ppl(0)`` at the recommended coefficient.
        behavior_change: measured ``B(c) - B(0)`` at the recommended coefficient.
        reason: one line saying why this coefficient, or why none.
    """

    sign: int
    coefficient: float | None
    perplexity_limit: float | None
    bound_reached: bool
    cost_effective: CostEffectiveRange | None
    perplexity_ratio: float | None
    behavior_change: float | None
    reason: str

    @property
    def name(self) -> str:
        """``positive`` or ``negative``."""
        return "positive" if self.sign > 0 else "negative"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (non-finite numbers become None)."""
        return {
            "sign": self.sign,
            "coefficient": json_float(self.coefficient),
            "perplexity_limit": json_float(self.perplexity_limit),
            "bound_reached": self.bound_reached,
            "cost_effective": None
            if self.cost_effective is None
            else self.cost_effective.to_dict(),
            "perplexity_ratio": json_float(self.perplexity_ratio),
            "behavior_change": json_float(self.behavior_change),
            "reason": self.reason,
        }

    def summary(self) -> str:
        """One line: the coefficient, what it costs and does, and why."""
        if self.coefficient is None:
            return f"{self.name}: none ({self.reason})"
        change = "" if self.behavior_change is None else f", B {self.behavior_change:+.2f}"
        ratio = "" if self.perplexity_ratio is None else f"perplexity x{self.perplexity_ratio:.2f}"
        return f"{self.name}: {self.coefficient:+g} ({ratio}{change}; {self.reason})"


@dataclass(frozen=True)
class CalibrationFit:
    """A calibration sweep, its fits and the recommendation per sign.

    Attributes:
        coefficients: the grid, ascending, with 0.
        behavior: measured ``B(c)`` per coefficient.
        perplexity: measured perplexity per coefficient.
        perplexity_bound: the largest allowed ``ppl(c) / ppl(0)``.
        behavior_fit: the tanh fit of ``B``, or the :class:`FitError` saying why there is none.
        fluency_fit: the parabolic-bound fit of ``F = 1 / ppl``, or its :class:`FitError`.
        positive: the recommendation for positive coefficients.
        negative: the recommendation for negative coefficients.
    """

    coefficients: tuple[float, ...]
    behavior: tuple[float, ...]
    perplexity: tuple[float, ...]
    perplexity_bound: float
    behavior_fit: BehaviorFit | FitError
    fluency_fit: HelpfulnessFit | FitError
    positive: SideRecommendation
    negative: SideRecommendation

    @property
    def perplexity_ratio(self) -> tuple[float, ...]:
        """``ppl(c) / ppl(0)`` per coefficient."""
        return _ratios(self.coefficients, self.perplexity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view: the points, each fit (or its error) and both recommendations."""
        out: dict[str, Any] = {
            "coefficients": [json_float(c) for c in self.coefficients],
            "behavior": [json_float(b) for b in self.behavior],
            "perplexity": [json_float(p) for p in self.perplexity],
            "perplexity_ratio": [json_float(q) for q in self.perplexity_ratio],
            "perplexity_bound": self.perplexity_bound,
            "fluency": "geometric-mean token probability F = 1 / perplexity",
        }
        for name, fit in (("behavior_fit", self.behavior_fit), ("fluency_fit", self.fluency_fit)):
            out[name] = {"error": str(fit)} if isinstance(fit, FitError) else fit.to_dict()
        out["positive"] = self.positive.to_dict()
        out["negative"] = self.negative.to_dict()
        return out

    def summary(self) -> str:
        """A few lines: the fits (or why none), then each sign's recommendation."""
        lines = [
            f"behaviour fit: none ({self.behavior_fit})"
            if isinstance(self.behavior_fit, FitError)
            else self.behavior_fit.summary()
        ]
        fluency = self.fluency_fit
        if isinstance(fluency, FitError):
            lines.append(f"fluency fit: none ({fluency})")
        else:
            lines.append(
                f"fluency fit    F(r) = 1/perplexity = F0/(F0+(1-F0)·a·(1+k·r²)): "
                f"F0 = {fluency.p0:.3g}, λσβ = {fluency.lambda_sigma_beta:.4g}, "
                f"R² = {fluency.r_squared:.3f}"
            )
        lines += [self.positive.summary(), self.negative.summary()]
        return "\n".join(lines)


def _ratios(coefficients: Sequence[float], perplexity: Sequence[float]) -> tuple[float, ...]:
    zero = perplexity[list(coefficients).index(0.0)]
    return tuple(float(p) / float(zero) for p in perplexity)


def recommend_side(
    coefficients: Sequence[float],
    perplexity_ratio: Sequence[float],
    sign: int,
    bound: float,
    cap: float | None = None,
) -> tuple[float | None, float | None, bool]:
    """The core decision for one sign, on measured numbers.

    Args:
        coefficients: the grid (any order; 0 is ignored).
        perplexity_ratio: ``ppl(c) / ppl(0)`` per coefficient.
        sign: ``+1`` or ``-1``: which side of 0.
        bound: the largest allowed ratio.
        cap: the largest allowed ``|c|`` (the cost-effective range's outer end), or None.

    Returns:
        ``(recommended, perplexity_limit, bound_reached)``: the largest grid coefficient of
        this sign walking out from 0 with every ratio so far within ``bound`` and ``|c| <=
        cap``; the largest within the bound regardless of ``cap``; whether a point of this
        side exceeded the bound. Either coefficient is None when none qualifies.
    """
    side = sorted(
        (
            (float(c), float(q))
            for c, q in zip(coefficients, perplexity_ratio, strict=True)
            if c * sign > 0
        ),
        key=lambda point: abs(point[0]),
    )
    within: list[float] = []
    bound_reached = False
    for c, ratio in side:
        if not ratio <= bound:  # NaN counts as beyond
            bound_reached = True
            break
        within.append(c)
    limit = within[-1] if within else None
    allowed = [c for c in within if cap is None or abs(c) <= cap * (1 + _TOLERANCE)]
    return (allowed[-1] if allowed else None), limit, bound_reached


def refinement(
    coefficients: Sequence[float], perplexity: Sequence[float], bound: float
) -> tuple[float, ...]:
    """One more coefficient per sign where the perplexity bound is crossed (a bisection step).

    On each side: the geometric mean of the last grid point within the bound and the first
    beyond it, or half the first point when even that one is beyond; nothing when the whole
    side stays within the bound. Rounded to 4 significant digits; none already in the grid.

    Args:
        coefficients: the swept grid, with 0.
        perplexity: measured perplexity per coefficient.
        bound: the largest allowed ``ppl(c) / ppl(0)``.

    Returns:
        The new coefficients, ascending (0, 1 or 2 of them).
    """
    ratios = _ratios(coefficients, perplexity)
    out: list[float] = []
    for sign in (-1, 1):
        _, limit, reached = recommend_side(coefficients, ratios, sign, bound)
        if not reached:
            continue
        beyond = min(
            (
                abs(c)
                for c, q in zip(coefficients, ratios, strict=True)
                if c * sign > 0 and abs(c) > abs(limit or 0.0) and not q <= bound
            ),
        )
        middle = beyond / 2 if limit is None else (abs(limit) * beyond) ** 0.5
        value = sign * float(f"{middle:.4g}")
        if value not in coefficients:
            out.append(value)
    return tuple(sorted(out))


def _mirrored(fit: BehaviorFit) -> BehaviorFit:
    """The fit of ``-B``: ``-tanh(Δλ·c + artanh B0) = tanh(-Δλ·c + artanh(-B0))``."""
    return replace(fit, b0=-fit.b0, delta_lambda=-fit.delta_lambda)


def _side(
    sign: int,
    coefficients: tuple[float, ...],
    behavior: tuple[float, ...],
    ratios: tuple[float, ...],
    bound: float,
    behavior_fit: BehaviorFit | FitError,
    fluency_fit: HelpfulnessFit | FitError,
    n: int,
) -> SideRecommendation:
    lo, hi = min(coefficients), max(coefficients)
    window: CostEffectiveRange | None = None
    note = ""
    if isinstance(behavior_fit, BehaviorFit) and isinstance(fluency_fit, HelpfulnessFit):
        fit = behavior_fit if sign > 0 else _mirrored(behavior_fit)
        try:
            window = cost_effective_range(fit, fluency_fit, lo, hi, n, sign)
        except FitError as exc:
            note = f"no cost-effective range ({exc})"
    else:
        which = "behaviour" if isinstance(behavior_fit, FitError) else "fluency"
        note = f"no {which} fit"
    cap: float | None = None
    if window is not None and not window.empty and window.lower is not None:
        cap = max(abs(window.lower), abs(window.upper or 0.0))
    elif window is not None:
        note = "no cost-effective range on this side"
    chosen, limit, reached = recommend_side(coefficients, ratios, sign, bound, cap)
    side_points = [c for c in coefficients if c * sign > 0]
    first = min(side_points, key=abs) if side_points else None
    if chosen is None:
        if first is None:
            reason = "the grid has no coefficient of this sign"
        elif limit is None:
            ratio = ratios[coefficients.index(first)]
            reason = f"perplexity x{ratio:.2f} > x{bound:g} already at {first:+g}: use a finer grid"
        else:
            reason = (
                f"the cost-effective range ends at {sign * (cap or 0.0):+.3g}, before {first:+g}"
            )
        return SideRecommendation(sign, None, limit, reached, window, None, None, reason)
    index = coefficients.index(chosen)
    zero = coefficients.index(0.0)
    if cap is not None and limit is not None and abs(chosen) < abs(limit):
        reason = (
            f"largest inside the cost-effective range (to {sign * cap:+.3g}); "
            f"the perplexity bound allowed {limit:+g}"
        )
    elif cap is not None:
        reason = f"largest with perplexity <= x{bound:g}, inside the cost-effective range"
    else:
        reason = f"largest with perplexity <= x{bound:g} ({note}: the bound alone decided)"
    if not reached:
        reason += "; the bound was not reached in the grid: a wider grid may allow more"
    return SideRecommendation(
        sign,
        chosen,
        limit,
        reached,
        window,
        ratios[index],
        behavior[index] - behavior[zero],
        reason,
    )


def recommend(
    coefficients: ArrayLike,
    behavior: ArrayLike,
    perplexity: ArrayLike,
    perplexity_bound: float = DEFAULT_PERPLEXITY_BOUND,
    *,
    n: int = 2001,
) -> CalibrationFit:
    """Fit a calibration sweep and recommend a coefficient per sign (see the module docstring).

    Args:
        coefficients: the grid; must hold 0 and at least one coefficient of some sign.
        behavior: measured ``B(c)`` in ``[-1, 1]`` per coefficient.
        perplexity: measured perplexity (> 0) per coefficient.
        perplexity_bound: the largest allowed ``ppl(c) / ppl(0)`` (> 1).
        n: points of the grid on which the cost-effective range is searched.

    Returns:
        The :class:`CalibrationFit`; a fit that fails keeps its :class:`FitError`.

    Raises:
        SpecError: mismatched lengths, no 0 in the grid, duplicate coefficients, a
            non-positive or non-finite perplexity, or a bound not above 1.
    """
    bound = check_number(perplexity_bound, "perplexity_bound", low=1.0, low_open=True)
    r = np.asarray(coefficients, dtype=float).ravel()
    b = np.asarray(behavior, dtype=float).ravel()
    p = np.asarray(perplexity, dtype=float).ravel()
    if not r.size == b.size == p.size:
        raise SpecError(
            f"calibration sweep: {r.size} coefficients, {b.size} behaviour values and "
            f"{p.size} perplexities differ in number"
        )
    if np.unique(r).size != r.size:
        raise SpecError("calibration sweep: the coefficients contain duplicates")
    if not (r == 0).any():
        raise SpecError("calibration sweep: the grid must hold 0 (the unsteered baseline)")
    if not np.all(np.isfinite(p)) or not np.all(p > 0):
        raise SpecError("calibration sweep: every perplexity must be a finite number above 0")
    order = np.argsort(r)
    grid = tuple(float(x) for x in r[order])
    values = tuple(float(x) for x in b[order])
    ppl = tuple(float(x) for x in p[order])
    behavior_fit: BehaviorFit | FitError
    fluency_fit: HelpfulnessFit | FitError
    try:
        behavior_fit = fit_behavior(grid, values)
    except FitError as exc:
        behavior_fit = exc
    try:
        fluency_fit = fit_helpfulness(grid, [1.0 / x for x in ppl])
    except FitError as exc:
        fluency_fit = exc
    ratios = _ratios(grid, ppl)
    sides = [
        _side(sign, grid, values, ratios, float(bound), behavior_fit, fluency_fit, n)
        for sign in (1, -1)
    ]
    return CalibrationFit(grid, values, ppl, float(bound), behavior_fit, fluency_fit, *sides)
