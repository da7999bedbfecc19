"""MMLU-style multiple-choice questions (:class:`MultipleChoiceItem`, :func:`load_mmlu`).

Either the original headerless CSV ``question,A,B,C,D,answer`` (answer a letter; the
subject comes from the file name, ``medical_genetics_test.csv`` -> ``medical_genetics``) or
the Hub ``cais/mmlu`` layout (``question, choices, answer, subject`` with ``choices`` a list
and ``answer`` an index) as CSV with a header, JSONL or a JSON list; a Hub id such as
``cais/mmlu:medical_genetics`` when ``datasets`` is installed; ``builtin:general_mc``.
"""

from __future__ import annotations

import ast
import json
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
    hub_rows,
    is_json,
    json_items,
    looks_like_hub_id,
    need_columns,
    nonempty,
    optional_text_field,
    read_text,
    text_field,
)
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError
from steerlab.validation import is_int

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")
_SPLIT_SUFFIXES = ("_test", "_dev", "_val", "_validation", "_train")


@dataclass(frozen=True)
class MultipleChoiceItem:
    """One multiple-choice question (MMLU).

    Attributes:
        question: the question text.
        choices: the answer options, in order (A, B, C, D for MMLU).
        answer: index of the correct option in ``choices``.
        subject: the MMLU subject (e.g. ``"medical_genetics"``), ``None`` when unknown.
    """

    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str | None = None

    @property
    def answer_letter(self) -> str:
        """The letter of the correct option (``"A"`` for index 0)."""
        return LETTERS[self.answer]


def _subject_from_name(path: Path) -> str | None:
    stem = path.stem
    for suffix in _SPLIT_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem or None


def _answer_index(value: Any, n_choices: int, where: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: answer must be an index or a letter, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        elif len(text) == 1 and text.upper() in LETTERS[:n_choices]:
            return LETTERS.index(text.upper())
        else:
            letters = ", ".join(LETTERS[:n_choices])
            raise DataError(
                f"{where}: answer must be one of {letters} or 0-{n_choices - 1}, got {value!r}"
            )
    if not is_int(value) or not 0 <= value < n_choices:
        raise DataError(f"{where}: answer must be an index 0-{n_choices - 1}, got {value!r}")
    return int(value)


def _choices(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise DataError(
                    f"{where}: choices must be a list (JSON or Python literal)"
                ) from None
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise DataError(f"{where}: choices must be a list of at least two strings")
    if len(value) > len(LETTERS) or not all(isinstance(c, str) for c in value):
        raise DataError(f"{where}: choices must be a list of at most 26 strings")
    return tuple(value)


def _mc_from_object(obj: Any, where: str) -> MultipleChoiceItem:
    obj = as_object(obj, where)
    question = text_field(obj, "question", where)
    if "choices" not in obj:
        raise DataError(f"{where}: missing field 'choices'")
    choices = _choices(obj["choices"], where)
    if "answer" not in obj:
        raise DataError(f"{where}: missing field 'answer'")
    answer = _answer_index(obj["answer"], len(choices), where)
    subject = optional_text_field(obj, "subject", where)
    return MultipleChoiceItem(question, choices, answer, subject or None)


def _mmlu_csv(path: Path, text: str) -> list[MultipleChoiceItem]:
    rows = csv_rows(path, text)
    if not rows:
        return []
    first_line, first = rows[0]
    header = header_of(first)
    items = []
    if "question" in header and "choices" in header:  # the Hub layout saved as CSV
        need_columns(path, first_line, header, ("question", "choices", "answer"))
        for line, row in rows[1:]:
            check_width(path, line, row, len(first), column_names(first))
            record: dict[str, Any] = {name: row[i] for name, i in header.items()}
            items.append(_mc_from_object(record, f"{path}:{line}"))
        return items
    if [name.strip().lower() for name in first] == [c.lower() for c in MMLU_COLUMNS]:
        rows = rows[1:]  # a header on the original layout
    subject = _subject_from_name(path)
    for line, row in rows:
        where = f"{path}:{line}"
        check_width(path, line, row, len(MMLU_COLUMNS), ",".join(MMLU_COLUMNS))
        nonempty(row[0], where, "question")
        letter = row[5].strip().upper()
        if len(letter) != 1 or letter not in "ABCD":
            raise DataError(f"{where}: answer must be one of A, B, C, D, got {row[5]!r}")
        items.append(MultipleChoiceItem(row[0], tuple(row[1:5]), "ABCD".index(letter), subject))
    return items


def load_mmlu(path: str | os.PathLike[str], limit: int | None = None) -> list[MultipleChoiceItem]:
    """Read MMLU questions.

    Args:
        path: a headerless ``question,A,B,C,D,answer`` CSV (the original release; the subject
            is taken from the file name), a CSV with a ``question,choices,answer[,subject]``
            header, a JSONL / JSON list of ``{question, choices, answer, subject}`` (the Hub
            layout), or a Hub id ``NAME[:CONFIG[:SPLIT]]`` such as ``cais/mmlu:medical_genetics``
            (needs the optional ``datasets`` package; split ``test`` by default).
        limit: keep only the first ``limit`` questions.

    Returns:
        The questions, in file order.

    Raises:
        DataError: ``FILE:LINE: what is wrong`` for the first bad row, a missing or empty file.
    """
    check_limit(limit)
    path = resolve_data_path(path, "mc")
    spec = os.fspath(path)
    if looks_like_hub_id(spec):
        rows = hub_rows(spec, default_config="all", default_split="test")
        items = [_mc_from_object(row, f"{spec}: row {i}") for i, row in enumerate(rows)]
        return finish(items, spec, "questions", limit)
    source = Path(path)
    text = read_text(source)
    if is_json(source, text):
        items = [_mc_from_object(obj, where) for where, obj in json_items(source, text)]
    else:
        items = _mmlu_csv(source, text)
    return finish(items, source, "questions", limit)
