"""Building blocks of a stage summary: numbers, tables, plots and files in the stage.json format.

A stage's ``summary`` (see the run-folder contract) holds ``headline``, ``numbers``, ``tables``,
``plots``, ``generations``, ``text`` and ``files``; every part is optional and every value is
JSON (a NaN or infinite number becomes ``None``). The helpers here build those parts from the
files a command wrote; :mod:`steerlab.runner.summaries` assembles them per stage kind.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Summary = dict[str, Any]

# z of a two-sided 95% normal interval: a fit's standard error as a CI.
Z95 = 1.959963984540054


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number(
    label: str,
    value: Any,
    low: Any = None,
    high: Any = None,
    unit: str = "",
) -> dict[str, Any]:
    """One entry of ``numbers``: a labelled value with its 95% CI when known."""
    kept = value if isinstance(value, int) and not isinstance(value, bool) else finite(value)
    entry: dict[str, Any] = {"label": label, "value": kept, "unit": unit}
    if finite(low) is not None or finite(high) is not None:
        entry["low"], entry["high"] = finite(low), finite(high)
    return entry


def with_stderr(label: str, value: Any, stderr: Any, unit: str = "") -> dict[str, Any]:
    """A fitted parameter with its normal 95% CI (value ± 1.96 standard errors)."""
    centre, spread = finite(value), finite(stderr)
    if centre is None or spread is None:
        return number(label, value, unit=unit)
    return number(label, centre, centre - Z95 * spread, centre + Z95 * spread, unit)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """One entry of ``tables``."""
    return {"title": title, "columns": list(columns), "rows": [list(row) for row in rows]}


def span(layers: Sequence[int]) -> str:
    """Compact text for a layer list: ``0-29`` for a run of three or more, else ``3,5,7``."""
    if not layers:
        return "none"
    ordered = sorted(layers)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(str(layer) for layer in ordered)


def relative(path: Path, stage_dir: Path) -> str:
    """``path`` relative to the stage folder, with forward slashes."""
    return path.relative_to(stage_dir).as_posix()


def plots(
    folder: Path, stage_dir: Path, titles: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """The SVG plots in ``folder``: the named ones first (``{stem: title}``), in that order,
    then any other ``*.svg`` there (titled by its name)."""
    if not folder.is_dir():
        return []
    known = dict(titles or {})
    found = []
    for stem, title in known.items():
        path = folder / f"{stem}.svg"
        if path.is_file():
            found.append({"title": title, "path": relative(path, stage_dir)})
    for path in sorted(folder.glob("*.svg")):
        if path.stem not in known:
            found.append({"title": path.stem.replace("_", " "), "path": relative(path, stage_dir)})
    return found


def files(stage_dir: Path, entries: Iterable[tuple[str, Path]]) -> list[dict[str, Any]]:
    """``files`` entries for those of ``entries`` (label, path) that exist; a file's size in
    ``bytes``."""
    out = []
    for label, path in entries:
        if path.is_file():
            out.append(
                {"label": label, "path": relative(path, stage_dir), "bytes": path.stat().st_size}
            )
        elif path.is_dir():
            out.append({"label": label, "path": relative(path, stage_dir)})
    return out


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when the file is missing or not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one a line (blank and bad lines skipped); [] when the
    file is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_csv(path: Path) -> tuple[list[str], list[list[Any]]] | None:
    """Header and rows of a CSV file, numbers parsed where a cell is one; None if missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = list(csv.reader(text.splitlines()))
    if not lines:
        return None
    return lines[0], [[_cell(cell) for cell in row] for row in lines[1:] if row]


def _cell(text: str) -> Any:
    """A CSV cell: an int or float where it reads as one, else the text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else None


def clean(value: Any) -> Any:
    """``value`` as strict JSON data: NaN/inf -> None, tuples -> lists, numpy scalars -> Python,
    empty summary parts dropped at the top level by :func:`tidy`."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return clean(item())
    return str(value)


def tidy(summary: Mapping[str, Any]) -> Summary:
    """The summary as strict JSON, without empty or missing parts."""
    return {key: clean(value) for key, value in summary.items() if value not in (None, "", [])}
