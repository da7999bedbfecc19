"""Plot of steering vectors compared per layer: cosine similarity of each pair, and their norms.

Takes a comparison's rows (objects with ``a``, ``b``, ``layer``, ``cosine``, ``norm_a`` and
``norm_b``, as :class:`steerlab.Comparison` holds), never a vector or a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from steerlab.errors import SpecError
from steerlab.report.style import plot_style, save_figure

__all__ = ["plot_comparison"]


def plot_comparison(comparison: Any, out_base: Path) -> list[Path]:
    """Cosine similarity per layer for each vector pair (top) and vector norms (bottom).

    Args:
        comparison: a :class:`steerlab.Comparison`.
        out_base: path without suffix; ``.png`` and ``.svg`` are written.
    """
    pairs = list(dict.fromkeys((r.a, r.b) for r in comparison.rows))
    if not pairs:
        raise SpecError("nothing to plot: the comparison has no rows")
    with plot_style():
        fig = Figure(figsize=(7.5, 6.4))
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        for a, b in pairs:
            rows = sorted(
                (r for r in comparison.rows if (r.a, r.b) == (a, b)), key=lambda r: r.layer
            )
            top.plot(
                [r.layer for r in rows], [r.cosine for r in rows], marker="o", label=f"{a} vs {b}"
            )
        top.axhline(0.0, color="0.4", linewidth=0.8)
        top.set_ylim(-1.05, 1.05)
        top.set_ylabel("cosine similarity")
        top.set_title("Steering vectors compared per layer")
        top.grid(alpha=0.3)
        top.legend(loc="best", fontsize="small")
        norms: dict[str, dict[int, float]] = {}
        for r in comparison.rows:
            norms.setdefault(r.a, {})[r.layer] = r.norm_a
            norms.setdefault(r.b, {})[r.layer] = r.norm_b
        for name, by_layer in norms.items():
            layers = sorted(by_layer)
            bottom.plot(layers, [by_layer[k] for k in layers], marker=".", label=name)
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.set_xlabel("layer")
        bottom.set_ylabel("vector norm")
        bottom.set_yscale("log")
        bottom.grid(alpha=0.3)
        bottom.legend(loc="best", fontsize="small")
        fig.tight_layout()
        return save_figure(fig, Path(out_base), "Steering vectors compared per layer")
