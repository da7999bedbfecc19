"""The plot of a calibration: behaviour and perplexity against the coefficient, with the picks.

Takes plain numbers (what :class:`steerlab.evaluate.calibrate.Calibration` holds), never a
model or a result object. Two panels share the coefficient axis, which is symmetric-log so
that a geometric grid of both signs spreads evenly: the behaviour ``B`` with its 95%
confidence band and fitted tanh (top), and the perplexity as a multiple of the unsteered
one on a log scale, with its fit and the bound (bottom). The cost-effective ranges are
shaded and each recommended coefficient is a vertical line in both panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullFormatter
from numpy.typing import ArrayLike

from steerlab.errors import SpecError
from steerlab.report.style import plot_style, save_figure

__all__ = ["plot_calibration"]

_RECOMMENDED = "#d62728"
_RANGE = "#2ca02c"


def plot_calibration(
    out_base: str | Path,
    *,
    coefficients: Sequence[float],
    behavior: Sequence[float],
    perplexity_ratio: Sequence[float],
    perplexity_bound: float,
    behavior_low: Sequence[float] | None = None,
    behavior_high: Sequence[float] | None = None,
    recommended: Sequence[float | None] = (),
    cost_effective: Sequence[tuple[float, float]] = (),
    behavior_curve: tuple[ArrayLike, ArrayLike] | None = None,
    perplexity_curve: tuple[ArrayLike, ArrayLike] | None = None,
    title: str = "Calibration",
) -> list[Path]:
    """Write the calibration plot as PNG and SVG.

    Args:
        out_base: path without suffix (``out/calibration``).
        coefficients: the swept grid.
        behavior: measured ``B`` per coefficient.
        perplexity_ratio: ``ppl(c) / ppl(0)`` per coefficient.
        perplexity_bound: the bound on that ratio (a horizontal line).
        behavior_low, behavior_high: the 95% interval of ``B`` per coefficient.
        recommended: the recommended coefficients (None entries are skipped).
        cost_effective: ``(lower, upper)`` ranges to shade.
        behavior_curve: ``(x, B(x))`` of the behaviour fit.
        perplexity_curve: ``(x, ratio(x))`` of the fluency fit as a perplexity ratio.
        title: the figure's title.

    Returns:
        ``[PNG path, SVG path]``.

    Raises:
        SpecError: no points, or sequences of different lengths.
    """
    x = np.asarray(coefficients, dtype=float)
    b = np.asarray(behavior, dtype=float)
    q = np.asarray(perplexity_ratio, dtype=float)
    if x.size == 0:
        raise SpecError("nothing to plot: the calibration has no points")
    if not x.size == b.size == q.size:
        raise SpecError("calibration plot: coefficients, behaviour and perplexity differ in length")
    order = np.argsort(x)
    x, b, q = x[order], b[order], q[order]
    nonzero = np.abs(x[x != 0])
    threshold = float(nonzero.min()) if nonzero.size else 1.0
    picks = [float(c) for c in recommended if c is not None]
    with plot_style():
        fig = Figure(figsize=(7.5, 6.4), layout="constrained")
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1]})
        for ax in (top, bottom):
            ax.set_xscale("symlog", linthresh=threshold, linscale=0.5)
            for lower, upper in cost_effective:
                ax.axvspan(lower, upper, color=_RANGE, alpha=0.08, linewidth=0, zorder=0)
            for c in picks:
                ax.axvline(c, color=_RECOMMENDED, linestyle=":", linewidth=1.4, zorder=3)
            ax.axvline(0.0, color="0.45", linewidth=0.8, zorder=1)
        if behavior_low is not None and behavior_high is not None:
            low = np.asarray(behavior_low, dtype=float)[order]
            high = np.asarray(behavior_high, dtype=float)[order]
            top.fill_between(x, low, high, color="C0", alpha=0.18, linewidth=0, zorder=2)
        top.plot(x, b, marker="o", color="C0", label="measured B", zorder=4)
        if behavior_curve is not None:
            top.plot(*_curve(behavior_curve), "--", color="black", linewidth=1.2, label="tanh fit")
        top.set_ylim(-1.05, 1.05)
        top.set_ylabel("behaviour B")
        top.set_title(title)
        bottom.plot(x, q, marker="o", color="C1", label="measured", zorder=4)
        if perplexity_curve is not None:
            cx, cy = _curve(perplexity_curve)
            keep = cy <= max(float(np.nanmax(q)), perplexity_bound) * 1.5
            bottom.plot(cx[keep], cy[keep], "--", color="black", linewidth=1.2, label="fit")
        bottom.axhline(
            perplexity_bound,
            color=_RECOMMENDED,
            linewidth=1.0,
            label=f"bound x{perplexity_bound:g}",
        )
        bottom.set_yscale("log")
        # Plain numbers (1.5, not 1.5x10^0); minor ticks labelled only over a short range.
        bottom.yaxis.set_major_formatter(LogFormatter())
        bottom.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1, 0.5)))
        bottom.set_ylabel("perplexity / unsteered")
        # The grid's own coefficients as ticks: a symmetric-log axis would label powers of 10.
        bottom.set_xticks(x, [f"{c:+.3g}" if c else "0" for c in x], rotation=45, fontsize=8)
        bottom.xaxis.set_minor_formatter(NullFormatter())
        bottom.set_xlabel("steering coefficient")
        if picks:
            labels = ", ".join(f"{c:+g}" for c in sorted(picks))
            bottom.plot([], [], color=_RECOMMENDED, linestyle=":", label=f"recommended {labels}")
        if cost_effective:
            bottom.fill_between([], [], color=_RANGE, alpha=0.15, label="cost-effective range")
        top.legend(loc="best", fontsize="small")
        bottom.legend(loc="best", fontsize="small")
        return save_figure(fig, Path(out_base), title)


def _curve(curve: tuple[ArrayLike, ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    cx = np.asarray(curve[0], dtype=float)
    cy = np.asarray(curve[1], dtype=float)
    if cx.shape != cy.shape:
        raise SpecError("calibration plot: a fitted curve's x and y differ in length")
    return cx, cy
