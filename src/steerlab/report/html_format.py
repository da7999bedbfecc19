"""How the HTML report writes values: numbers, durations, sizes, and the unsteered column."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

__all__ = [
    "DASH",
    "format_bytes",
    "format_seconds",
    "format_value",
    "is_number",
    "is_unsteered",
    "seconds_between",
]

DASH = "–"
"""Shown for a missing or NaN value."""

_UNSTEERED = {"0", "+0", "-0", "unsteered", "baseline", "none"}
"""Generation column names of the unsteered model (besides any number equal to 0)."""


def format_value(value: Any) -> str:
    """A table cell or number as text: 4 significant digits, ``–`` for None and NaN."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return DASH
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def format_seconds(seconds: float | None) -> str:
    """A wall time: ``0.4 s``, ``12.3 s``, ``4 min 05 s``, ``1 h 02 min``."""
    if seconds is None or math.isnan(seconds):
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_bytes(size: float) -> str:
    """A file size: ``512 B``, ``1.2 kB``, ``3.4 MB``, ``1.1 GB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # unreachable: the loop returns at GB


def is_number(value: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_unsteered(column: str) -> bool:
    """True for a generations column of the unsteered model (coefficient 0)."""
    name = column.strip().lower()
    if name in _UNSTEERED:
        return True
    try:
        return float(name) == 0.0
    except ValueError:
        return False


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from one ISO time to another; None when either is missing or unreadable."""
    try:
        elapsed = datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
    except (TypeError, ValueError):
        return None
    return elapsed.total_seconds()
