"""The fits of a sweep, typed: :class:`SweepFit` (what ``fit.json`` holds) and :func:`fit_sweep`.

A sweep's behaviour curve is fitted with the tanh model and its helpfulness curve with the
parabolic bound (:mod:`steerlab.stats.fitting`); when both fit on the same coefficients, the
trade-off (polynomial comparisons near 0, the cost-effective range) too. A curve that cannot be
fitted meaningfully keeps its :class:`~steerlab.stats.fit_results.FitError` in place of the fit,
so one bad curve does not hide the other. :meth:`SweepFit.to_dict` is the JSON of ``fit.json``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from steerlab.stats.fit_results import BehaviorFit, FitError, HelpfulnessFit, TradeoffFit
from steerlab.stats.fitting import fit_behavior, fit_helpfulness, fit_tradeoff
from steerlab.stats.rows import SweepRow, series
from steerlab.terminal import fold

__all__ = ["BEHAVIOR_METRIC", "HELPFULNESS_METRIC", "SweepFit", "fit_sweep", "pick_series"]

BEHAVIOR_METRIC = "B_likelihood"
"""The behaviour metric fitted when none is named (if the sweep has it)."""

HELPFULNESS_METRIC = "p_correct"
"""The helpfulness metric fitted when none is named (if the sweep has it)."""

_MAPPING_DEPRECATION = (
    "SweepResult.fit() returns a SweepFit; indexing it like the old dict is deprecated: "
    "use its attributes (fit.behavior.delta_lambda) or fit.to_dict()"
)


@dataclass(frozen=True)
class SweepFit:
    """The fits of one sweep's behaviour and helpfulness curves.

    Attributes:
        behavior_series: ``(task, metric)`` of the behaviour curve; None without one.
        helpfulness_series: ``(task, metric)`` of the helpfulness curve; None without one.
        behavior: the tanh fit, the :class:`FitError` saying why there is none, or None
            (no behaviour curve).
        helpfulness: the parabolic-bound fit, its :class:`FitError`, or None.
        tradeoff: both fits with the polynomial comparisons and the cost-effective range,
            its :class:`FitError`, or None (a curve missing or failed, or the two curves on
            different coefficients).
        estimates: empirical estimates of Δλ and λσβ by name, each an
            :class:`~steerlab.evaluate.estimates.Estimate` as a dict plus its ``task``.
    """

    behavior_series: tuple[str, str] | None
    helpfulness_series: tuple[str, str] | None
    behavior: BehaviorFit | FitError | None = None
    helpfulness: HelpfulnessFit | FitError | None = None
    tradeoff: TradeoffFit | FitError | None = None
    estimates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able dict of ``fit.json``: each fit's ``to_dict``, or ``{"error": ...}``."""
        out: dict[str, Any] = {
            "behavior_series": self.behavior_series,
            "helpfulness_series": self.helpfulness_series,
        }
        if self.estimates:
            out["empirical_estimates"] = {k: dict(v) for k, v in self.estimates.items()}
        for name in ("behavior", "helpfulness", "tradeoff"):
            value = getattr(self, name)
            if isinstance(value, FitError):
                out[name] = {"error": str(value)}
            elif value is not None:
                out[name] = value.to_dict()
        return out

    def summary(self) -> str:
        """A few plain-text lines: each fit (or why there is none), the estimates, the range."""
        lines = []
        for name, value in (("behaviour", self.behavior), ("helpfulness", self.helpfulness)):
            if isinstance(value, FitError):
                lines.append(f"{name} fit: {value}")
            elif value is not None:
                lines.append(value.summary())
        for name, estimate in self.estimates.items():
            lines.append(
                f"empirical {name} = {estimate['value']:.4g} "
                f"[{estimate['ci_low']:.3g}, {estimate['ci_high']:.3g}] ({estimate['task']})"
            )
        if isinstance(self.tradeoff, TradeoffFit):
            lines.append(self.tradeoff.cost_effective.summary())
        if not lines:
            lines.append("no fit: the sweep has no behaviour or helpfulness curve")
        return "\n".join(lines)

    def table(self) -> Table:
        """A rich table: one row per fitted parameter (value, standard error, source)."""
        table = Table(title="sweep fits")
        table.add_column("fit", overflow="fold")
        table.add_column("parameter", overflow="fold")
        table.add_column("value", justify="right", overflow="fold")
        table.add_column("detail", overflow="fold")
        for label, value, series_name in (
            ("behaviour (tanh)", self.behavior, self.behavior_series),
            ("helpfulness (parabolic bound)", self.helpfulness, self.helpfulness_series),
        ):
            where = "" if series_name is None else f"{series_name[0]} · {series_name[1]}"
            if isinstance(value, FitError):
                table.add_row(label, "error", "-", str(value))
            elif isinstance(value, BehaviorFit):
                table.add_row(label, "Δλ", f"{value.delta_lambda:.4g}", _stderr(value))
                table.add_row("", "B0", f"{value.b0:.3f}", value.b0_source)
                table.add_row("", "R²", f"{value.r_squared:.3f}", where)
            elif isinstance(value, HelpfulnessFit):
                table.add_row(
                    label,
                    "λσβ",
                    f"{value.lambda_sigma_beta:.4g}",
                    f"± {value.lambda_sigma_beta_stderr:.2g}",
                )
                table.add_row("", "a", f"{value.a:.3g}", f"± {value.a_stderr:.2g}")
                table.add_row("", "P0", f"{value.p0:.3f}", value.p0_source)
                table.add_row("", "R²", f"{value.r_squared:.3f}", where)
        for name, estimate in self.estimates.items():
            table.add_row(
                "empirical estimate",
                name,
                f"{estimate['value']:.4g}",
                f"[{estimate['ci_low']:.3g}, {estimate['ci_high']:.3g}] ({estimate['task']})",
            )
        if isinstance(self.tradeoff, FitError):
            table.add_row("trade-off", "error", "-", str(self.tradeoff))
        elif isinstance(self.tradeoff, TradeoffFit):
            for label, poly in (
                ("behaviour near 0", self.tradeoff.behavior_poly),
                ("helpfulness near 0", self.tradeoff.helpfulness_poly),
            ):
                table.add_row(
                    label, "better fit", poly.better, f"|r| <= {poly.window:g}, n = {poly.n_points}"
                )
            window = self.tradeoff.cost_effective
            if window.empty or window.lower is None or window.upper is None:
                table.add_row("cost-effective range", "r", "none", "")
            else:
                table.add_row(
                    "cost-effective range",
                    "r",
                    f"({window.lower:.3g}, {window.upper:.3g})",
                    f"best r = {window.best_r:.3g}",
                )
        return fold(table)

    # -- the old dict interface, deprecated ---------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        """Deprecated: ``fit["behavior"]["delta_lambda"]`` reads :meth:`to_dict`."""
        warnings.warn(_MAPPING_DEPRECATION, DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: ``fit.get("tradeoff")`` reads :meth:`to_dict`."""
        warnings.warn(_MAPPING_DEPRECATION, DeprecationWarning, stacklevel=2)
        return self.to_dict().get(key, default)

    def keys(self) -> list[str]:
        """Deprecated: the keys of :meth:`to_dict` (so ``dict(fit)`` gives the old dict)."""
        warnings.warn(_MAPPING_DEPRECATION, DeprecationWarning, stacklevel=2)
        return list(self.to_dict())

    def __contains__(self, key: object) -> bool:
        """Deprecated: whether :meth:`to_dict` has ``key``."""
        warnings.warn(_MAPPING_DEPRECATION, DeprecationWarning, stacklevel=2)
        return key in self.to_dict()

    def __iter__(self) -> Iterator[str]:
        """Deprecated: the keys of :meth:`to_dict`."""
        warnings.warn(_MAPPING_DEPRECATION, DeprecationWarning, stacklevel=2)
        return iter(self.to_dict())


def _stderr(fit: BehaviorFit) -> str:
    return f"± {fit.delta_lambda_stderr:.2g}"


def pick_series(
    rows: Sequence[SweepRow], kind: str, preferred: str, choice: tuple[str, str] | None = None
) -> tuple[str, str] | None:
    """``choice``, else the first ``(task, metric)`` of ``kind`` with metric ``preferred``,
    else the first of ``kind``; None when the rows have none of that kind."""
    if choice is not None:
        return choice
    options = list(dict.fromkeys((r.task, r.metric) for r in rows if r.kind == kind))
    return next((o for o in options if o[1] == preferred), options[0] if options else None)


def fit_sweep(
    rows: Sequence[SweepRow],
    estimates: Mapping[str, Mapping[str, Any]] | None = None,
    behavior: tuple[str, str] | None = None,
    helpfulness: tuple[str, str] | None = None,
) -> SweepFit:
    """Fit a sweep's curves as far as its rows allow.

    Args:
        rows: the sweep's rows.
        estimates: empirical estimates to carry along (see :attr:`SweepFit.estimates`).
        behavior: ``(task, metric)`` of the behaviour curve; default the first one,
            preferring :data:`BEHAVIOR_METRIC`.
        helpfulness: ``(task, metric)`` of the helpfulness curve; default the first one,
            preferring :data:`HELPFULNESS_METRIC`.

    Returns:
        The :class:`SweepFit`; a curve that cannot be fitted holds its :class:`FitError`.
    """
    b_choice = pick_series(rows, "behavior", BEHAVIOR_METRIC, behavior)
    h_choice = pick_series(rows, "helpfulness", HELPFULNESS_METRIC, helpfulness)
    b_fit: BehaviorFit | FitError | None = None
    h_fit: HelpfulnessFit | FitError | None = None
    tradeoff: TradeoffFit | FitError | None = None
    if b_choice is not None:
        r, values, _, _ = series(rows, *b_choice)
        try:
            b_fit = fit_behavior(r, values)
        except FitError as exc:
            b_fit = exc
    if h_choice is not None:
        r, values, _, _ = series(rows, *h_choice)
        try:
            h_fit = fit_helpfulness(r, values)
        except FitError as exc:
            h_fit = exc
    if isinstance(b_fit, BehaviorFit) and isinstance(h_fit, HelpfulnessFit):
        try:
            tradeoff = _tradeoff(rows, b_choice, h_choice)
        except FitError as exc:
            tradeoff = exc
    return SweepFit(b_choice, h_choice, b_fit, h_fit, tradeoff, dict(estimates or {}))


def _tradeoff(
    rows: Sequence[SweepRow], b_choice: tuple[str, str] | None, h_choice: tuple[str, str] | None
) -> TradeoffFit | None:
    """Both fits on the shared coefficients; None when a curve is missing or they differ.

    Raises:
        FitError: when a curve cannot be fitted.
    """
    if b_choice is None or h_choice is None:
        return None
    rb, vb, _, _ = series(rows, *b_choice)
    rh, vh, _, _ = series(rows, *h_choice)
    if list(rb) != list(rh):
        return None
    # Alignment rises on the side where the fitted slope points.
    sign = 1 if fit_behavior(rb, vb).delta_lambda >= 0 else -1
    return fit_tradeoff(rb, vb, vh, sign=sign)
