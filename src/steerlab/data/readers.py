"""Reading data files with one-line errors: text, JSON/JSONL items, CSV rows, fields, Hub rows.

The evaluation-set loaders (:mod:`steerlab.data.mmlu`, :mod:`~steerlab.data.ab`,
:mod:`~steerlab.data.harmful`, :mod:`~steerlab.data.truthfulqa`,
:mod:`~steerlab.data.stereoset`, :mod:`~steerlab.data.statements`) read their files
through these helpers, so every bad input is a :class:`~steerlab.errors.DataError` of one
line in the same form: ``FILE:LINE:`` for CSV rows (the physical line where the row starts,
the header being line 1) and JSONL lines, ``FILE: item N:`` for the N-th (0-based) object of
a JSON list, ``ID: row N:`` for a Hub dataset's rows.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from steerlab.errors import DataError
from steerlab.validation import check_int

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+){0,2}")


def check_limit(limit: int | None) -> None:
    """Raise SpecError unless ``limit`` is None or an integer >= 0."""
    check_int(limit, "limit", minimum=0, optional=True)


def take(items: list[Any], limit: int | None) -> list[Any]:
    """The first ``limit`` items (all when None)."""
    return items if limit is None else items[:limit]


def read_text(path: Path) -> str:
    """The file as text (UTF-8, a BOM dropped); DataError when missing, not UTF-8 or empty."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: empty file")
    return text


def is_json(path: Path, text: str) -> bool:
    """Whether to read the file as JSON/JSONL (by suffix, else by its first character)."""
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        return True
    if suffix in (".csv", ".txt"):
        return False
    return text.lstrip()[:1] in ("[", "{")


def json_items(path: Path, text: str) -> list[tuple[str, Any]]:
    """``(where, object)`` for each object of a JSON list or a JSONL file."""
    stripped = text.lstrip()
    if path.suffix.lower() != ".jsonl" and stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if not (stripped.startswith("{") and exc.msg == "Extra data"):
                raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        else:
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list of objects (or JSONL)")
            return [(f"{path}: item {i}", item) for i, item in enumerate(data)]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
    return items


def csv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` for each non-blank CSV row; ``line`` is where the row starts."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"{path}:{start}: malformed CSV ({exc})") from None
        if row and not (len(row) == 1 and not row[0].strip()):
            rows.append((start, row))
        start = reader.line_num + 1
    return rows


def header_of(row: Sequence[str]) -> dict[str, int]:
    """Column index by lower-cased name (the first column of a repeated name wins)."""
    names = [name.strip().lower() for name in row]
    return {name: i for i, name in reversed(list(enumerate(names)))}


def column_names(row: Sequence[str]) -> str:
    """A header row as messages show it (``a,b,c``)."""
    return ",".join(name.strip() for name in row)


def need_columns(path: Path, line: int, header: dict[str, int], names: Iterable[str]) -> None:
    """DataError naming the first of ``names`` the header lacks."""
    for name in names:
        if name not in header:
            found = ",".join(sorted(header, key=header.__getitem__))
            raise DataError(f"{path}:{line}: missing column {name!r} (header: {found})")


def check_width(path: Path, line: int, row: Sequence[str], width: int, what: str) -> None:
    """DataError unless the CSV row has ``width`` fields (``what``: the expected columns)."""
    if len(row) != width:
        raise DataError(f"{path}:{line}: expected {width} columns ({what}), got {len(row)}")


def as_object(obj: Any, where: str) -> dict[str, Any]:
    """``obj`` if it is a JSON object; DataError otherwise."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def text_field(obj: dict[str, Any], key: str, where: str) -> str:
    """The non-empty string field ``key``; DataError when missing or of another type."""
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field {key!r} must be a non-empty string")
    return value


def optional_text_field(obj: dict[str, Any], key: str, where: str) -> str | None:
    """The string field ``key``, or None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string or null")
    return value


def nonempty(value: str, where: str, name: str) -> str:
    """``value`` unless it is blank (then DataError naming ``name``)."""
    if not value.strip():
        raise DataError(f"{where}: {name} is empty")
    return value


def looks_like_hub_id(spec: str) -> bool:
    """Whether ``spec`` is a Hub dataset id (``owner/name[:config[:split]]``), not a local file."""
    return (
        _HUB_ID.fullmatch(spec) is not None
        and not Path(spec).exists()
        and Path(spec).suffix.lower() not in (".csv", ".json", ".jsonl", ".tsv", ".txt")
    )


def hub_rows(spec: str, default_config: str | None, default_split: str) -> list[dict[str, Any]]:
    """Rows of a Hub dataset named ``NAME[:CONFIG[:SPLIT]]`` (needs ``datasets``)."""
    try:
        datasets = importlib.import_module("datasets")
    except ImportError:
        raise DataError(
            f"{spec}: no such file; reading it as a Hugging Face Hub dataset needs the "
            "'datasets' package (pip install datasets)"
        ) from None
    name, *rest = spec.split(":")
    config = rest[0] if rest else default_config
    split = rest[1] if len(rest) > 1 else default_split
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # any Hub failure (network, unknown name) is a data error here
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{spec}: could not load from the Hub ({message})") from None
    return [dict(row) for row in dataset]


def finish(items: list[Any], source: str | Path, what: str, limit: int | None) -> list[Any]:
    """The first ``limit`` items; DataError when the file held none."""
    if not items:
        raise DataError(f"{source}: no {what} in the file")
    return take(items, limit)
