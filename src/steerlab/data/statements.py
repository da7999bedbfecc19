"""True/false statements (:class:`Statement`, :func:`load_statements`).

The RepE facts and geometry-of-truth sets: a CSV whose header holds at least
``statement,label`` (label 0 or 1), or a JSON list / JSONL of ``{statement, label}``;
``builtin:facts``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.data.readers import (
    as_object,
    check_limit,
    check_width,
    column_names,
    csv_rows,
    finish,
    header_of,
    is_json,
    json_items,
    need_columns,
    nonempty,
    read_text,
    text_field,
)
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError
from steerlab.validation import is_int


@dataclass(frozen=True)
class Statement:
    """One true/false statement.

    Attributes:
        text: the statement.
        label: ``True`` when the statement is true.
    """

    text: str
    label: bool


def _statement_label(value: Any, where: str) -> bool:
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    if (isinstance(value, bool) or is_int(value)) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: label must be 0 or 1, got {value!r}")


def _statement_from_object(obj: Any, where: str) -> Statement:
    obj = as_object(obj, where)
    text = text_field(obj, "statement", where)
    if "label" not in obj:
        raise DataError(f"{where}: missing field 'label'")
    return Statement(text, _statement_label(obj["label"], where))


def _statements_csv(path: Path, text: str) -> list[Statement]:
    rows = csv_rows(path, text)
    if not rows:
        return []
    first_line, first = rows[0]
    header = header_of(first)
    need_columns(path, first_line, header, ("statement", "label"))
    items = []
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        check_width(path, line, row, len(first), column_names(first))
        statement = nonempty(row[header["statement"]], where, "statement")
        items.append(Statement(statement, _statement_label(row[header["label"]], where)))
    return items


def load_statements(path: str | os.PathLike[str], limit: int | None = None) -> list[Statement]:
    """Read true/false statements (RepE facts, geometry-of-truth sets).

    Args:
        path: a CSV whose header holds ``statement`` and ``label`` (0 or 1; other columns
            are ignored), or a JSON list / JSONL of ``{statement, label}``.
        limit: keep only the first ``limit`` statements.

    Returns:
        The statements, in file order.

    Raises:
        DataError: ``FILE:LINE: what is wrong`` for the first bad row, a missing or empty file.
    """
    check_limit(limit)
    path = resolve_data_path(path, "statements")
    source = Path(path)
    text = read_text(source)
    if is_json(source, text):
        items = [_statement_from_object(obj, where) for where, obj in json_items(source, text)]
    else:
        items = _statements_csv(source, text)
    return finish(items, source, "statements", limit)
