"""Plots of sweep results: behaviour, helpfulness and the alignment/helpfulness frontier.

Every function takes :class:`~steerlab.stats.rows.SweepRow` records (and optionally the fits
computed from them, :mod:`steerlab.stats.fit_results`), never a model. The style and the
deterministic PNG/SVG output are :mod:`steerlab.report.style`'s; an ``out_base`` names a plot
without its extension (``out/behavior`` gives ``out/behavior.png`` and ``out/behavior.svg``).

The other plots are re-exported here, so ``steerlab.report.plots`` still offers every plot:
:func:`~steerlab.report.vectors.plot_comparison` and :func:`~steerlab.report.matrix.plot_matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.patches import Patch

from steerlab.errors import SpecError
from steerlab.report.matrix import plot_matrix
from steerlab.report.style import (
    DPI,
    legend,
    new_figure,
    plot_style,
    save_figure,
)
from steerlab.report.style import (
    compact_number as _num,
)
from steerlab.report.vectors import plot_comparison
from steerlab.stats.rows import SweepRow, series

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from steerlab.stats.fit_results import BehaviorFit, HelpfulnessFit, TradeoffFit

__all__ = [
    "DPI",
    "plot_behavior",
    "plot_comparison",
    "plot_helpfulness",
    "plot_matrix",
    "plot_sweep",
    "plot_tradeoff",
]

BEHAVIOR_METRIC = "B_likelihood"
"""Behaviour metric preferred when none is named."""

HELPFULNESS_METRIC = "p_correct"
"""Helpfulness metric preferred when none is named."""

_HELPFULNESS_ORDER = ("p_correct", "accuracy", "sampled_accuracy")
_FIT_POINTS = 301


# --------------------------------------------------------------------------------------------
# Public plots
# --------------------------------------------------------------------------------------------


def plot_behavior(
    rows: Sequence[SweepRow],
    out_base: Path,
    fit: BehaviorFit | None = None,
    task: str | None = None,
    metric: str | None = None,
) -> list[Path]:
    """Plot behaviour expectation ``B`` against the steering coefficient.

    One series (points joined by a line, with its 95% confidence band) per behaviour
    task/metric among ``rows`` (``kind == "behavior"``), narrowed to ``task`` and/or ``metric``
    when given. With ``fit``, the fitted ``tanh(Δλ·r + artanh B0)`` curve is drawn dashed over
    the plotted coefficient range, its parameters in the legend.

    Args:
        rows: Sweep rows; rows of other kinds are ignored.
        out_base: Path of the plot without extension.
        fit: Fitted behaviour curve to overlay, if any.
        task: Plot only this behaviour task.
        metric: Plot only this behaviour metric.

    Returns:
        ``[PNG path, SVG path]``.

    Raises:
        SpecError: No behaviour rows match ``task``/``metric``.
    """
    rows = list(rows)
    pairs = _select(rows, "behavior", task, metric, (BEHAVIOR_METRIC,))
    with plot_style():
        fig, ax = new_figure()
        chosen = _kind_rows(rows, "behavior", pairs)
        handles = _draw_series(ax, chosen, pairs)
        coefficients = _plotted_coefficients(chosen)
        if fit is not None:
            grid = _grid(coefficients)
            (line,) = ax.plot(
                grid,
                fit.predict(grid),
                linestyle="--",
                color="black",
                linewidth=1.6,
                label=(
                    f"tanh fit: Δλ={_num(fit.delta_lambda)}, B0={_num(fit.b0)}, "
                    f"R²={_num(fit.r_squared)}"
                ),
                zorder=4,
            )
            handles.append(line)
        ax.axhline(0.0, color="0.35", linewidth=0.9, zorder=1)
        _zero_line(ax, coefficients)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("steering coefficient r_e")
        ax.set_ylabel("behaviour B = P(aligned) − P(misaligned)")
        title = _title("Behaviour vs steering coefficient", pairs)
        ax.set_title(title)
        legend(ax, handles, outside=True)
        return save_figure(fig, out_base, title)


def plot_helpfulness(
    rows: Sequence[SweepRow],
    out_base: Path,
    fit: HelpfulnessFit | None = None,
    task: str | None = None,
    metric: str | None = None,
) -> list[Path]:
    """Plot helpfulness against the steering coefficient.

    One series (points, line, 95% band) per helpfulness task/metric among ``rows``
    (``kind == "helpfulness"``), narrowed to ``task`` and/or ``metric`` when given; with no
    ``metric``, every helpfulness metric of the chosen tasks is drawn, ``p_correct`` first,
    then ``accuracy``. With ``fit``, the fitted parabolic bound
    ``P0 / (P0 + (1 - P0)·a·(1 + (λσβ)²/2·r²))`` is drawn dashed, its parameters in the
    legend.

    Args:
        rows: Sweep rows; rows of other kinds are ignored.
        out_base: Path of the plot without extension.
        fit: Fitted helpfulness curve to overlay, if any.
        task: Plot only this helpfulness task.
        metric: Plot only this helpfulness metric.

    Returns:
        ``[PNG path, SVG path]``.

    Raises:
        SpecError: No helpfulness rows match ``task``/``metric``.
    """
    rows = list(rows)
    pairs = _select(rows, "helpfulness", task, metric, _HELPFULNESS_ORDER)
    with plot_style():
        fig, ax = new_figure()
        chosen = _kind_rows(rows, "helpfulness", pairs)
        handles = _draw_series(ax, chosen, pairs)
        coefficients = _plotted_coefficients(chosen)
        if fit is not None:
            grid = _grid(coefficients)
            (line,) = ax.plot(
                grid,
                fit.predict(grid),
                linestyle="--",
                color="black",
                linewidth=1.6,
                label=(
                    f"parabolic bound fit: P0={_num(fit.p0)}, a={_num(fit.a)}, "
                    f"λσβ={_num(fit.lambda_sigma_beta)}, R²={_num(fit.r_squared)}"
                ),
                zorder=4,
            )
            handles.append(line)
        _zero_line(ax, coefficients)
        _helpfulness_limits(ax, chosen)
        ax.set_xlabel("steering coefficient r_e")
        metrics = list(dict.fromkeys(m for _, m in pairs))
        ax.set_ylabel(f"helpfulness ({', '.join(metrics)})")
        title = _title("Helpfulness vs steering coefficient", pairs)
        ax.set_title(title)
        legend(ax, handles, outside=True)
        return save_figure(fig, out_base, title)


def plot_tradeoff(
    rows: Sequence[SweepRow],
    out_base: Path,
    behavior_task: str | None = None,
    behavior_metric: str | None = None,
    helpfulness_task: str | None = None,
    helpfulness_metric: str | None = None,
    fit: TradeoffFit | None = None,
) -> list[Path]:
    """Plot the alignment/helpfulness frontier traced by the steering coefficient.

    Behaviour (y) against helpfulness (x), the two matched by coefficient; the points are
    joined in coefficient order, coloured by coefficient (colour bar), with their 95% intervals
    as thin error bars and the point at ``r = 0`` annotated. With ``fit``, the fitted frontier
    ``(P(r), B(r))`` is drawn dashed over the plotted coefficient range.

    Unnamed tasks/metrics default as in :func:`plot_sweep`: the first behaviour series
    (preferring ``B_likelihood``) and the first helpfulness series (preferring ``p_correct``).

    Args:
        rows: Sweep rows.
        out_base: Path of the plot without extension.
        behavior_task: Behaviour task for the y axis.
        behavior_metric: Behaviour metric for the y axis.
        helpfulness_task: Helpfulness task for the x axis.
        helpfulness_metric: Helpfulness metric for the x axis.
        fit: Fits whose frontier to overlay, if any.

    Returns:
        ``[PNG path, SVG path]``.

    Raises:
        SpecError: No rows for a named series, or no coefficient measured in both.
    """
    rows = list(rows)
    b_task, b_metric = _default_pair(rows, "behavior", behavior_task, behavior_metric)
    h_task, h_metric = _default_pair(rows, "helpfulness", helpfulness_task, helpfulness_metric)
    r, hx, hlo, hhi, by, blo, bhi = _matched(rows, (b_task, b_metric), (h_task, h_metric))
    if r.size == 0:
        raise SpecError(
            f"no coefficient has both behaviour {b_task}/{b_metric} and helpfulness "
            f"{h_task}/{h_metric} rows"
        )
    with plot_style():
        fig, ax = new_figure()
        ax.errorbar(
            hx,
            by,
            xerr=_err(hx, hlo, hhi),
            yerr=_err(by, blo, bhi),
            fmt="none",
            ecolor="0.7",
            elinewidth=0.8,
            capsize=0,
            zorder=1,
        )
        ax.plot(hx, by, color="0.45", linewidth=1.2, zorder=2)
        norm, cmap = _coefficient_norm(r)
        points = ax.scatter(
            hx, by, c=r, cmap=cmap, norm=norm, s=46, edgecolors="black", linewidths=0.6, zorder=3
        )
        colorbar = fig.colorbar(points, ax=ax, pad=0.02)
        colorbar.set_label("coefficient r_e")
        handles = []
        if fit is not None:
            grid = _grid(r)
            (line,) = ax.plot(
                fit.helpfulness.predict(grid),
                fit.behavior.predict(grid),
                linestyle="--",
                color="black",
                linewidth=1.4,
                label="fitted frontier (tanh and parabolic bound fits)",
                zorder=2.5,
            )
            handles.append(line)
        zero = np.flatnonzero(r == 0.0)
        if zero.size:
            i = int(zero[0])
            ax.annotate(
                "r = 0",
                xy=(hx[i], by[i]),
                xytext=(14, 14),
                textcoords="offset points",
                fontsize=9.5,
                fontweight="bold",
                arrowprops={"arrowstyle": "->", "color": "black", "linewidth": 0.9},
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "0.6"},
                zorder=5,
            )
        ax.margins(0.08)
        ax.set_xlabel(f"helpfulness: {h_task} · {h_metric}")
        ax.set_ylabel(f"behaviour: {b_task} · {b_metric}")
        title = "Alignment–helpfulness frontier"
        ax.set_title(title)
        if handles:
            legend(ax, handles, outside=True)
        return save_figure(fig, out_base, title)


def plot_sweep(
    rows: Sequence[SweepRow], out_dir: Path, fit: TradeoffFit | None = None
) -> list[Path]:
    """Write the standard plots of a sweep into ``out_dir``.

    ``behavior.png/.svg`` (first behaviour task, preferring metric ``B_likelihood``),
    ``helpfulness.png/.svg`` (first helpfulness task, preferring one with ``p_correct``; all
    its helpfulness metrics) and ``tradeoff.png/.svg`` (the frontier of those two series). A
    plot whose kind has no rows is skipped; the trade-off needs both kinds and at least one
    shared coefficient. The fits in ``fit``, when given, are overlaid.

    Args:
        rows: Sweep rows.
        out_dir: Folder for the plots (created if missing).
        fit: Fits of the sweep, if computed.

    Returns:
        The paths written, in the order behaviour, helpfulness, trade-off (PNG before SVG).
    """
    rows = list(rows)
    out_dir = Path(out_dir)
    written: list[Path] = []
    behavior = helpfulness = None
    if any(r.kind == "behavior" for r in rows):
        behavior = _default_pair(rows, "behavior", None, None)
        written += plot_behavior(
            rows,
            out_dir / "behavior",
            fit=fit.behavior if fit is not None else None,
            task=behavior[0],
            metric=behavior[1],
        )
    if any(r.kind == "helpfulness" for r in rows):
        helpfulness = _default_pair(rows, "helpfulness", None, None)
        written += plot_helpfulness(
            rows,
            out_dir / "helpfulness",
            fit=fit.helpfulness if fit is not None else None,
            task=helpfulness[0],
        )
    if behavior is not None and helpfulness is not None:
        r = _matched(rows, behavior, helpfulness)[0]
        if r.size:
            written += plot_tradeoff(
                rows,
                out_dir / "tradeoff",
                behavior_task=behavior[0],
                behavior_metric=behavior[1],
                helpfulness_task=helpfulness[0],
                helpfulness_metric=helpfulness[1],
                fit=fit,
            )
    return written


# --------------------------------------------------------------------------------------------
# Selection of series
# --------------------------------------------------------------------------------------------


def _pairs(rows: Sequence[SweepRow], kind: str) -> list[tuple[str, str]]:
    """Distinct (task, metric) pairs of one kind, sorted."""
    return sorted({(r.task, r.metric) for r in rows if r.kind == kind})


def _select(
    rows: Sequence[SweepRow],
    kind: str,
    task: str | None,
    metric: str | None,
    preferred: Sequence[str],
) -> list[tuple[str, str]]:
    """The (task, metric) series to draw, preferred metrics first within each task."""
    available = _pairs(rows, kind)
    chosen = [
        (t, m)
        for t, m in available
        if (task is None or t == task) and (metric is None or m == metric)
    ]
    if not chosen:
        raise SpecError(_missing(kind, task, metric, available))
    rank = {m: i for i, m in enumerate(preferred)}
    tasks = list(dict.fromkeys(t for t, _ in chosen))
    return sorted(chosen, key=lambda p: (tasks.index(p[0]), rank.get(p[1], len(rank)), p[1]))


def _default_pair(
    rows: Sequence[SweepRow], kind: str, task: str | None, metric: str | None
) -> tuple[str, str]:
    """One series: the first matching, preferring the kind's usual metric."""
    preferred = BEHAVIOR_METRIC if kind == "behavior" else HELPFULNESS_METRIC
    available = _pairs(rows, kind)
    chosen = [
        (t, m)
        for t, m in available
        if (task is None or t == task) and (metric is None or m == metric)
    ]
    if not chosen:
        raise SpecError(_missing(kind, task, metric, available))
    return next((p for p in chosen if p[1] == preferred), chosen[0])


def _missing(
    kind: str, task: str | None, metric: str | None, available: list[tuple[str, str]]
) -> str:
    """One-line message for a request that matches no rows."""
    if not available:
        return f"no {kind} rows to plot"
    wanted = ", ".join(
        f"{name} {value!r}" for name, value in (("task", task), ("metric", metric)) if value
    )
    shown = ", ".join(f"{t}/{m}" for t, m in available[:8])
    more = f" and {len(available) - 8} more" if len(available) > 8 else ""
    return f"no {kind} rows for {wanted} (available: {shown}{more})"


def _matched(
    rows: Sequence[SweepRow], behavior: tuple[str, str], helpfulness: tuple[str, str]
) -> tuple[np.ndarray, ...]:
    """Coefficients shared by two series, with both series' values and intervals there."""
    b = {r.coefficient: r for r in rows if r.kind == "behavior" and (r.task, r.metric) == behavior}
    h = {
        r.coefficient: r
        for r in rows
        if r.kind == "helpfulness" and (r.task, r.metric) == helpfulness
    }
    shared = sorted(set(b) & set(h))
    return (
        np.array(shared, dtype=float),
        np.array([h[c].value for c in shared], dtype=float),
        np.array([h[c].ci_low for c in shared], dtype=float),
        np.array([h[c].ci_high for c in shared], dtype=float),
        np.array([b[c].value for c in shared], dtype=float),
        np.array([b[c].ci_low for c in shared], dtype=float),
        np.array([b[c].ci_high for c in shared], dtype=float),
    )


def _kind_rows(rows: Sequence[SweepRow], kind: str, pairs: list[tuple[str, str]]) -> list[SweepRow]:
    """The rows of one kind belonging to the given (task, metric) series."""
    wanted = set(pairs)
    return [r for r in rows if r.kind == kind and (r.task, r.metric) in wanted]


def _plotted_coefficients(rows: Sequence[SweepRow]) -> np.ndarray:
    return np.array(sorted({r.coefficient for r in rows}), dtype=float)


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def _draw_series(ax: Axes, rows: list[SweepRow], pairs: list[tuple[str, str]]) -> list[Any]:
    """Points, line and 95% band per series; returns legend handles (band and line paired).

    ``rows`` are already restricted to one kind; with one task the labels name only metrics.
    """
    single_task = len({t for t, _ in pairs}) == 1
    handles: list[Any] = []
    for i, (task, metric) in enumerate(pairs):
        r, value, low, high = series(rows, task, metric)
        color = f"C{i % 10}"
        ax.fill_between(r, low, high, color=color, alpha=0.18, linewidth=0, zorder=2)
        (line,) = ax.plot(
            r, value, marker="o", markersize=4.5, linewidth=1.4, color=color, zorder=3
        )
        band = Patch(facecolor=color, alpha=0.18, edgecolor="none")
        label = metric if single_task else f"{task} · {metric}"
        handles.append(((band, line), f"{label} (95% CI band)"))
    return handles


def _zero_line(ax: Axes, coefficients: np.ndarray) -> None:
    """A faint vertical line at r = 0 when the sweep spans it."""
    if coefficients.size and coefficients.min() <= 0.0 <= coefficients.max():
        ax.axvline(0.0, color="0.6", linewidth=0.8, linestyle=":", zorder=1)


def _grid(coefficients: np.ndarray) -> np.ndarray:
    finite = coefficients[np.isfinite(coefficients)]
    if finite.size == 0:
        return np.zeros(1)
    return np.linspace(float(finite.min()), float(finite.max()), _FIT_POINTS)


def _err(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Asymmetric error-bar lengths (never negative, NaN as 0)."""
    below = np.nan_to_num(np.maximum(value - low, 0.0))
    above = np.nan_to_num(np.maximum(high - value, 0.0))
    return np.vstack([below, above])


def _coefficient_norm(r: np.ndarray) -> tuple[Normalize, str]:
    """Diverging colours centred on 0 for signed sweeps, sequential otherwise."""
    lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
    if lo < 0.0 < hi:
        bound = max(-lo, hi)
        return Normalize(vmin=-bound, vmax=bound), "coolwarm"
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return Normalize(vmin=lo, vmax=hi), "viridis"


def _helpfulness_limits(ax: Axes, rows: list[SweepRow]) -> None:
    """Zoom onto the data (so a small quadratic drop is visible), never beyond [0, 1]."""
    values = np.array([v for r in rows for v in (r.value, r.ci_low, r.ci_high)], dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        ax.set_ylim(-0.02, 1.02)
        return
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.08 * (hi - lo), 0.02)
    ax.set_ylim(max(lo - pad, -0.02), min(hi + pad, 1.02))


def _title(prefix: str, pairs: list[tuple[str, str]]) -> str:
    tasks = list(dict.fromkeys(t for t, _ in pairs))
    return f"{prefix} ({tasks[0]})" if len(tasks) == 1 else prefix
