"""A/B questions of Contrastive Activation Addition (:class:`ABItem`, :func:`load_ab`).

A JSON list (or JSONL) of ``question, answer_matching_behavior,
answer_not_matching_behavior``, the answers letters such as ``"(A)"``; ``builtin:honesty_ab``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.data.readers import (
    as_object,
    check_limit,
    finish,
    json_items,
    read_text,
    text_field,
)
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError


@dataclass(frozen=True)
class ABItem:
    """One A/B question of Contrastive Activation Addition.

    Attributes:
        question: the question, with its ``Choices:`` block.
        matching: letter of the answer showing the behaviour, e.g. ``"B"``.
        not_matching: letter of the answer not showing it, e.g. ``"A"``.
        matching_raw: the answer as written in the file, e.g. ``"(B)"``.
        not_matching_raw: the other answer as written in the file, e.g. ``"(A)"``.
    """

    question: str
    matching: str
    not_matching: str
    matching_raw: str
    not_matching_raw: str


_LETTER_ANSWER = re.compile(r"\(?([A-Za-z])\)?")
_LETTER_PREFIX = re.compile(r"\(([A-Za-z])\)\s")


def _letter(obj: dict[str, Any], key: str, where: str) -> tuple[str, str]:
    raw = text_field(obj, key, where)
    text = raw.strip()
    match = _LETTER_ANSWER.fullmatch(text) or _LETTER_PREFIX.match(text)
    if match is None:
        raise DataError(f"{where}: field {key!r} must be an answer letter like '(A)', got {raw!r}")
    return match.group(1).upper(), raw


def _ab_from_object(obj: Any, where: str) -> ABItem:
    obj = as_object(obj, where)
    question = text_field(obj, "question", where)
    matching, matching_raw = _letter(obj, "answer_matching_behavior", where)
    not_matching, not_matching_raw = _letter(obj, "answer_not_matching_behavior", where)
    if matching == not_matching:
        raise DataError(f"{where}: both answers are {matching!r}; they must differ")
    return ABItem(question, matching, not_matching, matching_raw, not_matching_raw)


def load_ab(path: str | os.PathLike[str], limit: int | None = None) -> list[ABItem]:
    """Read CAA A/B questions (``generate.json`` or ``test_ab.json``).

    Args:
        path: a JSON list (or JSONL) of ``{question, answer_matching_behavior,
            answer_not_matching_behavior}``; answers are letters such as ``"(A)"``.
        limit: keep only the first ``limit`` questions.

    Returns:
        The questions with the letters of both answers (``"A"``) and their raw text.

    Raises:
        DataError: ``FILE: item N: what is wrong``, invalid JSON, a missing or empty file.
    """
    check_limit(limit)
    path = resolve_data_path(path, "ab")
    source = Path(path)
    text = read_text(source)
    items = [_ab_from_object(obj, where) for where, obj in json_items(source, text)]
    return finish(items, source, "questions", limit)
