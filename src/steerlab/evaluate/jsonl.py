"""Result rows on disk: the one JSONL reader and writer of every result file.

A sweep (:class:`~steerlab.stats.rows.SweepRow`), the honesty suite
(:class:`~steerlab.evaluate.suite_rows.SuiteRow`) and the steering matrix
(:class:`~steerlab.evaluate.matrix.MatrixRow`, and its generation cache) all keep their rows
as one JSON line per row. Each row type writes its own line (``to_json``) and parses one
(``from_json(line, where)``); this module reads and writes the files: blank lines are skipped,
a bad line fails with one line naming ``FILE:LINE``, and a file is replaced atomically, so an
interrupted run never leaves half a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar

from steerlab.errors import DataError
from steerlab.provenance import atomic_write

__all__ = ["JsonRow", "read_rows", "write_lines", "write_rows"]

T = TypeVar("T")


class JsonRow(Protocol):
    """A row that writes itself as one JSON line."""

    def to_json(self) -> str:
        """The row as one line of JSON (no newline)."""
        ...


def read_rows(path: str | os.PathLike[str], parse: Callable[[str, str], T]) -> list[T]:
    """Every non-blank line of a JSONL file, parsed.

    Args:
        path: the file.
        parse: builds a row from a line and ``"FILE:LINE"`` (what an error names), e.g.
            ``SweepRow.from_json``; it raises :class:`~steerlab.errors.DataError` on a bad line.

    Returns:
        The rows, in file order.

    Raises:
        DataError: no such file, a file that is not UTF-8 text, or (from ``parse``) a bad line
            (``FILE:LINE: ...``).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{file}: no such file") from None
    except UnicodeDecodeError:
        raise DataError(f"{file}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from None
    return [
        parse(line, f"{file}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def write_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> Path:
    """Replace ``path`` atomically with ``lines``, each ended by a newline; return the path."""
    file = Path(path)
    with atomic_write(file) as handle:
        for line in lines:
            handle.write(line + "\n")
    return file


def write_rows(path: str | os.PathLike[str], rows: Iterable[JsonRow]) -> Path:
    """Replace ``path`` atomically with one JSON line per row, in the given order."""
    return write_lines(path, (row.to_json() for row in rows))
