"""The honesty suite's result row: a model's metric on a dataset, with its 95% bootstrap interval.

One :class:`SuiteRow` per model x metric x dataset; ``results.jsonl`` holds one JSON line per
row (read and written by :mod:`steerlab.evaluate.jsonl`). Floats are rounded to 10 significant
digits and NaN is written as ``null``, so files are stable and strict JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from steerlab.errors import DataError
from steerlab.validation import is_number

__all__ = ["SuiteRow"]


def _rounded(value: Any) -> Any:
    """Floats to 10 significant digits (non-finite: None), recursively, for stable files."""
    if isinstance(value, float):
        return float(f"{value:.10g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _unrounded(value: Any) -> Any:
    """Undo :func:`_rounded` on parsed JSON: null back to NaN, numbers as floats."""
    if value is None:
        return float("nan")
    if isinstance(value, dict):
        return {str(k): _unrounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unrounded(v) for v in value]
    return float(value) if is_number(value) else value


@dataclass(frozen=True)
class SuiteRow:
    """One measured value: a model's metric on a dataset, with its 95% bootstrap interval.

    Attributes:
        model: the model's label.
        metric: one of :data:`METRICS`.
        dataset: the dataset's name (file stem, built-in name, ``truthfulqa``, ``facts``;
            ``facts L12`` for a cosine metric at one layer).
        value: the metric's value (NaN when undefined, e.g. AUROC with one class).
        low: lower end of the 95% percentile bootstrap interval.
        high: upper end of the interval.
        n: items behind the value (statements, questions, texts, prompts).
        extra: further facts (cosine metrics: ``layers`` of the mean over layers or the
            ``layer`` of a per-layer row, and the ``positions`` read; ``perplexity``: token
            count).
    """

    model: str
    metric: str
    dataset: str
    value: float
    low: float
    high: float
    n: int
    extra: dict[str, Any] = field(default_factory=dict, compare=True, hash=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """``(model, metric, dataset)``."""
        return (self.model, self.metric, self.dataset)

    def to_json(self) -> str:
        """One JSON line; floats rounded to 10 significant digits, NaN written as null."""
        data = {
            "model": self.model,
            "metric": self.metric,
            "dataset": self.dataset,
            "value": _rounded(float(self.value)),
            "low": _rounded(float(self.low)),
            "high": _rounded(float(self.high)),
            "n": int(self.n),
            "extra": _rounded(dict(self.extra)),
        }
        return json.dumps(data, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, line: str, where: str) -> SuiteRow:
        """Parse :meth:`to_json` output; ``where`` (``FILE:LINE``) names bad input.

        Raises:
            DataError: invalid JSON, a missing field or a field of the wrong type.
        """
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object")
        for name in ("model", "metric", "dataset", "value", "low", "high", "n"):
            if name not in data:
                raise DataError(f"{where}: missing field {name!r}")
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise DataError(f"{where}: field 'extra' must be an object")
        try:
            return cls(
                model=str(data["model"]),
                metric=str(data["metric"]),
                dataset=str(data["dataset"]),
                value=_unrounded(data["value"]),
                low=_unrounded(data["low"]),
                high=_unrounded(data["high"]),
                n=int(data["n"]),
                extra=_unrounded(extra),
            )
        except (TypeError, ValueError):
            raise DataError(f"{where}: a field has the wrong type") from None
