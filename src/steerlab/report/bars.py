"""Bar charts of suite results: one panel per metric and dataset, one bar per model.

Takes result rows (:class:`~steerlab.evaluate.rows.SuiteRow` or dicts with the same keys),
never a model. Written as PNG and SVG, atomically and deterministically, like the other plots
of :mod:`steerlab.report` (:mod:`steerlab.report.style`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from steerlab.errors import DataError, SpecError
from steerlab.report.style import plot_style, save_figure

__all__ = ["METRIC_TITLES", "plot_suite_bars"]

METRIC_TITLES: dict[str, str] = {
    "tf_accuracy": "true/false accuracy",
    "tf_auroc": "true/false AUROC",
    "truthfulqa_mc1": "TruthfulQA MC1 accuracy",
    "truthfulqa_mc2": "TruthfulQA MC2 (true mass)",
    "ab_honest_rate": "A/B honest choice rate",
    "ab_honest_prob": "A/B P(honest answer)",
    "perplexity": "perplexity (lower is better)",
    "cosine": "cosine with the honesty vector",
    "cosine_statement": "vector cosine: statement tokens",
    "cosine_answer": "vector cosine: answer position",
}
"""Readable panel titles per metric (others use the metric name)."""

_UNIT_METRICS = {
    "tf_accuracy",
    "tf_auroc",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "ab_honest_rate",
    "ab_honest_prob",
}
_COLUMNS = 3
_PANEL = (3.4, 2.7)


@dataclass(frozen=True)
class _Bar:
    model: str
    metric: str
    dataset: str
    value: float
    low: float
    high: float


def _field(row: Any, name: str, index: int) -> Any:
    if isinstance(row, Mapping):
        if name not in row:
            raise DataError(f"row {index}: missing field {name!r}")
        return row[name]
    if not hasattr(row, name):
        raise DataError(f"row {index}: missing field {name!r}")
    return getattr(row, name)


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _bars(rows: Sequence[Any]) -> list[_Bar]:
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(
                _Bar(
                    str(_field(row, "model", i)),
                    str(_field(row, "metric", i)),
                    str(_field(row, "dataset", i)),
                    _number(_field(row, "value", i)),
                    _number(_field(row, "low", i)),
                    _number(_field(row, "high", i)),
                )
            )
        except (TypeError, ValueError):
            raise DataError(f"row {i}: value, low and high must be numbers") from None
    return out


def panel_title(metric: str, dataset: str) -> str:
    """A readable title, e.g. ``"true/false accuracy — facts_true_false"``."""
    name = METRIC_TITLES.get(metric, metric)
    if dataset and dataset.lower().replace("_", "") not in name.lower().replace(" ", ""):
        return f"{name} — {dataset}"
    return name


def _label(value: float, metric: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:.4g}"
    return f"{value:.2f}" if metric == "perplexity" or abs(value) >= 10 else f"{value:.3f}"


def plot_suite_bars(rows: Sequence[Any], out_base: Path) -> list[Path]:
    """Bar chart grid of suite rows with 95% intervals as asymmetric error bars.

    One panel per (metric, dataset), in order of first appearance; one bar per model, in
    order of first appearance, each model keeping its colour in every panel (legend below).

    Args:
        rows: objects or dicts with ``model``, ``metric``, ``dataset``, ``value``, ``low``
            and ``high``.
        out_base: path of the plot without extension (``out/bars`` writes ``out/bars.png``
            and ``out/bars.svg``).

    Returns:
        ``[PNG path, SVG path]``.

    Raises:
        SpecError: no rows.
        DataError: a row lacking a field.
    """
    bars = _bars(rows)
    if not bars:
        raise SpecError("nothing to plot: no suite rows")
    models = list(dict.fromkeys(b.model for b in bars))
    panels = list(dict.fromkeys((b.metric, b.dataset) for b in bars))
    index = {(b.model, b.metric, b.dataset): b for b in bars}
    colors = {model: f"C{i % 10}" for i, model in enumerate(models)}
    ncols = min(_COLUMNS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    title = "Honesty suite: models compared (95% bootstrap intervals)"
    with plot_style():
        fig = Figure(
            figsize=(_PANEL[0] * ncols + 0.4, _PANEL[1] * nrows + 0.9), layout="constrained"
        )
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, (metric, dataset) in enumerate(panels):
            ax = axes[k // ncols][k % ncols]
            xs, values, lows, highs, shown = [], [], [], [], []
            for x, model in enumerate(models):
                bar = index.get((model, metric, dataset))
                if bar is None:
                    continue
                value = bar.value if math.isfinite(bar.value) else 0.0
                low = bar.low if math.isfinite(bar.low) else value
                high = bar.high if math.isfinite(bar.high) else value
                xs.append(x)
                values.append(value)
                lows.append(max(0.0, value - low))
                highs.append(max(0.0, high - value))
                shown.append(bar)
            ax.bar(
                xs,
                values,
                width=0.7,
                color=[colors[b.model] for b in shown],
                yerr=[lows, highs],
                capsize=3,
                error_kw={"elinewidth": 1.0, "ecolor": "0.2"},
                zorder=2,
            )
            tops = [v + h for v, h in zip(values, highs, strict=True)]
            bottoms = [v - lo for v, lo in zip(values, lows, strict=True)]
            span = max([*tops, 0.0]) - min([*bottoms, 0.0]) or 1.0
            for x, bar, top, bottom in zip(xs, shown, tops, bottoms, strict=True):
                up = bar.value >= 0 or not math.isfinite(bar.value)
                ax.text(
                    x,
                    (top + 0.02 * span) if up else (bottom - 0.02 * span),
                    _label(bar.value, metric),
                    ha="center",
                    va="bottom" if up else "top",
                    fontsize=7.5,
                    zorder=3,
                )
            ax.set_title(panel_title(metric, dataset), fontsize=9.5)
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels([])
            ax.tick_params(axis="x", length=0)
            ax.set_xlim(-0.6, len(models) - 0.4)
            ax.axhline(0.0, color="0.35", linewidth=0.8, zorder=1)
            ax.grid(axis="x", visible=False)
            low_edge = min([*bottoms, 0.0])
            high_edge = max([*tops, 0.0])
            if metric in _UNIT_METRICS:
                low_edge, high_edge = min(low_edge, 0.0), max(high_edge, 1.0)
            pad = 0.14 * ((high_edge - low_edge) or 1.0)
            ax.set_ylim(low_edge - (pad if low_edge < 0 else 0.0), high_edge + pad)
        for k in range(len(panels), nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        handles = [Patch(facecolor=colors[m], label=m) for m in models]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(len(models), 4),
            frameon=False,
        )
        fig.suptitle(title, fontsize=11)
        return save_figure(fig, Path(out_base), title)
