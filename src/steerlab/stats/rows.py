"""Sweep measurements: one row per coefficient x task x metric, with a 95% confidence interval.

The row type every sweep writes (``results.jsonl``, one JSON line per row) and every sweep plot
reads, with the helpers that order rows and pull one series out of them. Pure data: no model,
no plotting; :mod:`steerlab.report` draws these rows without importing the evaluation code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from steerlab.errors import DataError

__all__ = ["KINDS", "SweepRow", "row_dicts", "series", "sorted_rows"]

KINDS = ("behavior", "helpfulness", "perplexity")
"""The kinds of sweep rows, in file order."""


@dataclass(frozen=True)
class SweepRow:
    """One measured point of a sweep.

    Attributes:
        task: task name (e.g. ``"refusal"`` or ``"mmlu_medical_genetics"``).
        kind: ``behavior``, ``helpfulness`` or ``perplexity``.
        metric: e.g. ``B_likelihood``, ``B_sampling``, ``p_correct``, ``accuracy``,
            ``sampled_accuracy``, ``perplexity``.
        coefficient: the steering coefficient r_e.
        value: the metric's value (a mean over items).
        ci_low: lower end of the 95% confidence interval.
        ci_high: upper end of the 95% confidence interval.
        n: number of items (or samples) behind the value.
    """

    task: str
    kind: str
    metric: str
    coefficient: float
    value: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def key(self) -> tuple[str, str, float]:
        """What identifies the row within a sweep: (task, metric, coefficient)."""
        return (self.task, self.metric, self.coefficient)

    def to_json(self) -> str:
        """One JSON line (floats rounded to 10 significant digits for stable files)."""
        data = asdict(self)
        for name in ("coefficient", "value", "ci_low", "ci_high"):
            data[name] = float(f"{data[name]:.10g}")
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, line: str, where: str) -> SweepRow:
        """Parse :meth:`to_json` output; ``where`` (``FILE:LINE``) names bad input."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object")
        missing = [f for f in cls.__dataclass_fields__ if f not in data]
        if missing:
            raise DataError(f"{where}: missing field {missing[0]!r}")
        try:
            return cls(
                task=str(data["task"]),
                kind=str(data["kind"]),
                metric=str(data["metric"]),
                coefficient=float(data["coefficient"]),
                value=float(data["value"]),
                ci_low=float(data["ci_low"]),
                ci_high=float(data["ci_high"]),
                n=int(data["n"]),
            )
        except (TypeError, ValueError):
            raise DataError(f"{where}: a field has the wrong type") from None


def sorted_rows(rows: Iterable[SweepRow]) -> list[SweepRow]:
    """Rows in the canonical file order: kind, task, metric, coefficient."""
    order = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(rows, key=lambda r: (order.get(r.kind, 99), r.task, r.metric, r.coefficient))


def series(
    rows: Iterable[SweepRow], task: str, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(coefficients, values, ci_low, ci_high) of one task's metric, by coefficient."""
    chosen = sorted(
        (r for r in rows if r.task == task and r.metric == metric), key=lambda r: r.coefficient
    )
    return (
        np.array([r.coefficient for r in chosen]),
        np.array([r.value for r in chosen]),
        np.array([r.ci_low for r in chosen]),
        np.array([r.ci_high for r in chosen]),
    )


def row_dicts(rows: Iterable[SweepRow]) -> list[dict[str, Any]]:
    """Rows as plain dicts (for tables and JSON)."""
    return [asdict(r) for r in rows]
