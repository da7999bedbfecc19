"""Writing the run's JSON records (``run.json``, ``stage.json``), atomically.

A record is either whole or absent: it is written to a temporary file beside its target and
renamed over it, so a run killed at any moment never leaves a half-written record, and a
stage counts as finished exactly when its ``stage.json`` exists. They are read back with
:func:`steerlab.report.html_load.read_json`, the report's reader of the same files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from steerlab.provenance import atomic_write


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (NaN and infinities as null)."""
    with atomic_write(path) as handle:
        json.dump(_finite(record), handle, indent=2, allow_nan=False)
        handle.write("\n")


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
