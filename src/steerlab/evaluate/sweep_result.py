"""The result of a sweep: its rows and settings, fitted, plotted and rendered.

:class:`SweepResult` holds one :class:`~steerlab.stats.rows.SweepRow` per task x metric x
coefficient; :meth:`SweepResult.fit` fits its curves (:mod:`~steerlab.evaluate.sweep_fit`),
:meth:`SweepResult.plot` draws them (:mod:`steerlab.report.plots`), :meth:`SweepResult.table`
and :meth:`SweepResult.summary` render it for a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from steerlab.evaluate.sweep_fit import SweepFit, fit_sweep
from steerlab.stats.fit_results import TradeoffFit
from steerlab.stats.rows import KINDS, SweepRow
from steerlab.terminal import fold

__all__ = ["SweepResult"]


@dataclass
class SweepResult:
    """Rows of a sweep plus its settings; fit and plot them.

    Attributes:
        rows: one per task x metric x coefficient, canonical order.
        config: the sweep's settings and provenance.
    """

    rows: list[SweepRow]
    config: dict[str, Any] = field(default_factory=dict)
    estimates: dict[str, Any] = field(default_factory=dict)

    def tasks(self, kind: str) -> list[tuple[str, str]]:
        """(task, metric) pairs of a kind, in file order."""
        seen: list[tuple[str, str]] = []
        for row in self.rows:
            if row.kind == kind and (row.task, row.metric) not in seen:
                seen.append((row.task, row.metric))
        return seen

    def fit(
        self,
        behavior: tuple[str, str] | None = None,
        helpfulness: tuple[str, str] | None = None,
    ) -> SweepFit:
        """Fit the tanh and parabolic bounds (as far as the rows allow).

        Args:
            behavior: (task, metric) of the behaviour curve; default the first one.
            helpfulness: (task, metric) of the helpfulness curve; default first p_correct.

        Returns:
            The typed :class:`~steerlab.evaluate.sweep_fit.SweepFit` (each curve's fit, or the
            :class:`~steerlab.stats.fit_results.FitError` saying why there is none);
            ``to_dict()`` is the JSON of ``fit.json``.
        """
        return fit_sweep(self.rows, self.estimates, behavior, helpfulness)

    def tradeoff_fit(self) -> TradeoffFit | None:
        """The full :class:`TradeoffFit` of the default curves when both fit, else None."""
        tradeoff = self.fit().tradeoff
        return tradeoff if isinstance(tradeoff, TradeoffFit) else None

    def plot(self, out_dir: str | Path) -> list[Path]:
        """Write behavior/helpfulness/tradeoff plots (PNG and SVG) into ``out_dir``."""
        # Imported here: matplotlib takes a while to import, and only plotting needs it.
        from steerlab.report.plots import plot_sweep

        return plot_sweep(self.rows, Path(out_dir), self.tradeoff_fit())

    def table(self) -> Table:
        """A summary table: one row per coefficient, one column per task metric."""
        columns = self.tasks("behavior") + self.tasks("helpfulness") + self.tasks("perplexity")
        table = Table(title="sweep summary (value [95% CI])")
        table.add_column("coef", justify="right")
        for task, metric in columns:
            table.add_column(f"{task}\n{metric}", justify="right")
        coefficients = sorted({r.coefficient for r in self.rows})
        index = {r.key: r for r in self.rows}
        for c in coefficients:
            cells = [f"{c:+g}"]
            for task, metric in columns:
                row = index.get((task, metric, c))
                cells.append(
                    "-" if row is None else f"{row.value:.3f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
                )
            table.add_row(*cells)
        return fold(table)  # task names wrap, never end in "…"

    def summary(self) -> str:
        """A few plain-text lines: what was swept, then the fits (:meth:`SweepFit.summary`)."""
        coefficients = sorted({r.coefficient for r in self.rows})
        curves = [f"{t} · {m}" for kind in KINDS for t, m in self.tasks(kind)]
        span = f"{coefficients[0]:g} to {coefficients[-1]:g}" if coefficients else "none"
        head = (
            f"sweep: {len(coefficients)} coefficients ({span}), {len(self.rows)} rows; "
            f"curves: {', '.join(curves) if curves else 'none'}"
        )
        return head + "\n" + self.fit().summary()
