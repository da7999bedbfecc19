"""Reading and writing the run's JSON records (``run.json``, ``stage.json``), atomically.

A record is either whole or absent: it is written to a temporary file beside its target and
renamed over it, so a run killed at any moment never leaves a half-written record, and a
stage counts as finished exactly when its ``stage.json`` exists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from steerlab.errors import DataError
from steerlab.provenance import atomic_write


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (NaN and infinities as null)."""
    with atomic_write(path) as handle:
        json.dump(_finite(record), handle, indent=2, allow_nan=False)
        handle.write("\n")


def read_json(path: Path) -> dict[str, Any]:
    """A record written by :func:`write_json`.

    Raises:
        DataError: the file cannot be read or is not a JSON object (naming the file).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
