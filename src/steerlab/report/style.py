"""The look and the file output shared by every plot: fixed style, legends, deterministic PNG/SVG.

Figures are built with the object-oriented :class:`matplotlib.figure.Figure` API on an Agg
canvas, so pyplot's global state and the user's interactive backend are left untouched.

Each plot is written twice, as PNG (:data:`DPI` dpi) and as SVG, each atomically (temporary file
beside the target, then rename), and the paths written are returned. Output is deterministic:
the same data give byte-identical files (no dates or software versions in the PNG, no date and
a fixed id salt in the SVG), so a resumed run rewrites identical plots.

An ``out_base`` names a plot without its extension: ``out/behavior`` gives
``out/behavior.png`` and ``out/behavior.svg``. A base that already ends in ``.png`` or
``.svg`` has that suffix replaced; any other suffix is kept (``run.v2`` gives
``run.v2.png``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple

from steerlab.provenance import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "DPI",
    "STYLE",
    "compact_number",
    "legend",
    "new_figure",
    "plot_style",
    "plot_targets",
    "save_figure",
]

DPI = 150
"""Resolution of the PNG files."""

FIGSIZE = (7.5, 4.8)
"""Size (inches) of a single-axes plot."""

STYLE: dict[str, Any] = {
    # Deterministic SVG: fixed salt for element ids, glyphs as paths (no font lookup by
    # viewers), no external fonts; a fixed font with Greek letters and superscripts.
    "svg.hashsalt": "steerlab",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 10.5,
    "legend.fontsize": 8.5,
    "axes.unicode_minus": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
}
"""matplotlib rc settings every plot is built and saved under."""


@contextmanager
def plot_style() -> Iterator[None]:
    """Fixed rc settings while a figure is built and saved (restored afterwards)."""
    with mpl.rc_context(cast(Any, STYLE)):
        yield


def new_figure() -> tuple[Figure, Axes]:
    """A single-axes figure on its own Agg canvas (call inside :func:`plot_style`)."""
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def legend(ax: Axes, handles: list[Any], outside: bool = False) -> None:
    """Legend from series handles ``((band, line), label)`` and plain artists.

    ``outside`` puts it below the axes (centred, one or two columns), where it can never
    cover data; otherwise matplotlib picks the emptiest corner inside the axes.
    """
    artists: list[Any] = []
    labels: list[str] = []
    for handle in handles:
        if isinstance(handle, tuple):
            artists.append(handle[0])
            labels.append(handle[1])
        else:
            artists.append(handle)
            labels.append(handle.get_label())
    options: dict[str, Any] = {
        "framealpha": 0.9,
        "handler_map": {tuple: HandlerTuple(ndivide=1)},
    }
    if outside:
        columns = 2 if len(labels) > 1 and max(len(label) for label in labels) <= 48 else 1
        ax.get_figure().legend(  # type: ignore[union-attr]
            artists, labels, loc="outside lower center", ncols=columns, **options
        )
    else:
        ax.legend(artists, labels, loc="best", **options)


def compact_number(value: float) -> str:
    """Compact number for legends (3 significant digits)."""
    return f"{value:.3g}"


def plot_targets(out_base: Path) -> list[Path]:
    """The PNG and SVG paths of a plot named ``out_base`` (see the module docstring)."""
    base = Path(out_base)
    if base.suffix.lower() in (".png", ".svg"):
        base = base.with_suffix("")
    return [base.with_name(base.name + ".png"), base.with_name(base.name + ".svg")]


def save_figure(fig: Figure, out_base: Path, title: str) -> list[Path]:
    """Write the figure as PNG and SVG, each atomically; return both paths.

    No creation date and no software version go into the files, so equal figures give equal
    bytes.
    """
    png, svg = plot_targets(out_base)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None, "Title": title})
    with atomic_path(svg) as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None, "Title": title})
    return [png, svg]
