"""Plot of a steering matrix: behaviour rate and fluency against the coefficient, per condition.

Takes the matrix's per-condition rates (dicts with ``vector``, ``operator``, ``normalization``,
``layers``, ``coefficient``, ``rate`` and ``median_perplexity``, as
``steerlab.evaluate.matrix.MatrixResult.rates`` gives), never a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from steerlab.errors import SpecError
from steerlab.report.style import plot_style, save_figure

__all__ = ["plot_matrix"]


def plot_matrix(summary: Sequence[dict[str, Any]], out_base: Path, scorer: str) -> list[Path]:
    """Behaviour rate (top) and median perplexity (bottom) against the coefficient.

    One column per normalisation, one line per vector x operator x layer mode (solid: add,
    dashed: subtract); ablation and the unsteered baseline as dotted horizontal lines.

    Args:
        summary: one dict per condition (see the module docstring).
        out_base: path without suffix; ``.png`` and ``.svg`` are written.
        scorer: the scorer's name, for the rate axis label.

    Returns:
        ``[PNG path, SVG path]``.

    Raises:
        SpecError: no condition to plot.
    """
    columns = [n for n in ("normalized", "raw") if any(e["normalization"] == n for e in summary)]
    flat = [e for e in summary if e["operator"] not in ("add", "subtract")]
    if not columns and not flat:
        raise SpecError("nothing to plot: the matrix has no rows")
    columns = columns or ["raw"]
    with plot_style():
        fig = Figure(figsize=(5.2 * len(columns) + 1.0, 7.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, len(columns), squeeze=False, sharey="row")
        handles: dict[str, Any] = {}
        for col, norm in enumerate(columns):
            top, bottom = axes[0][col], axes[1][col]
            lines: dict[str, list[dict[str, Any]]] = {}
            for e in summary:
                if e["operator"] in ("add", "subtract") and e["normalization"] == norm:
                    lines.setdefault(f"{e['vector']} {e['operator']} {e['layers']}", []).append(e)
            for key, entries in sorted(lines.items()):
                entries = sorted(entries, key=lambda e: e["coefficient"])
                x = [e["coefficient"] for e in entries]
                style = "-" if " add " in f" {key} " else "--"
                (handle,) = top.plot(x, [e["rate"] for e in entries], style, marker="o")
                bottom.plot(
                    x,
                    [e["median_perplexity"] for e in entries],
                    style,
                    marker="o",
                    color=handle.get_color(),
                )
                handles.setdefault(key, handle)
            for k, entry in enumerate(flat):
                label = (
                    "unsteered"
                    if entry["operator"] == "none"
                    else (f"{entry['vector']} ablate {entry['layers']}")
                )
                color = f"{0.1 + 0.6 * k / max(len(flat), 1):.2f}"
                h = top.axhline(entry["rate"], linestyle=":", linewidth=1.4, color=color)
                bottom.axhline(
                    entry["median_perplexity"], linestyle=":", linewidth=1.4, color=color
                )
                handles.setdefault(label, h)
            top.set_ylim(-0.03, 1.03)
            top.set_xscale("log")
            top.set_title(
                "normalised (coefficient = fraction of activation norm)"
                if norm == "normalized"
                else "raw (coefficient = multiple of the vector)",
                fontsize="medium",
            )
            top.grid(alpha=0.3)
            bottom.set_yscale("log")
            bottom.set_xscale("log")
            bottom.set_xlabel("|coefficient|")
            bottom.grid(alpha=0.3)
        axes[0][0].set_ylabel(f"rate scored +1 ({scorer})")
        axes[1][0].set_ylabel("median perplexity (unsteered model)")
        fig.suptitle("Steering matrix: behaviour and fluency (solid: add, dashed: subtract)")
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="lower center",
            ncol=3,
            fontsize="x-small",
            frameon=False,
        )
        rows = math.ceil(len(handles) / 3)
        fig.subplots_adjust(bottom=0.1 + 0.025 * rows, top=0.9, hspace=0.25, wspace=0.08)
        return save_figure(fig, Path(out_base), "Steering matrix")
