"""The files of the honest/deceptive Q/A recipe: question files, Q/A chat files, pair files.

Question files (:func:`read_questions`) may be

* text: one question per line; blank lines and lines starting with ``#`` are skipped;
* JSONL: one ``{"question": ...}`` (or ``{"prompt": ...}``, or ``{"messages": [...]}``)
  object per line;
* JSON: a list of such objects, of strings, or of chats ``[{role: user, ...}, {role:
  assistant, ...}]`` (the study's format; the first user message is the question);
* ``builtin:NAME``: the prompts of a shipped set (``builtin:honesty``, ``builtin:happy_sad``).

Q/A files (:func:`read_qa`) are the JSONL written by :func:`write_chat_jsonl`, one
``{"messages": [user, assistant], "style": ...}`` per line, or the study's JSON list of chats.
:func:`write_pairs_jsonl` writes pairs :func:`steerlab.load_pairs` reads. Every write is
atomic; every bad record is a one-line :class:`~steerlab.errors.DataError`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from steerlab.chat import validate_messages
from steerlab.data.pairs import ContrastPair, json_records
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError
from steerlab.provenance import atomic_write
from steerlab.validation import check_int

Style = Literal["honest", "deceptive"]
STYLES: tuple[str, ...] = get_args(Style)

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class QAExample:
    """One question with a short answer.

    Attributes:
        question: the user's question.
        answer: the assistant's answer.
        style: ``"honest"``, ``"deceptive"``, or ``None`` when unknown (e.g. the study's files).
    """

    question: str
    answer: str
    style: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The JSONL record: a user/assistant chat and the style."""
        return {
            "messages": [
                {"role": "user", "content": self.question},
                {"role": "assistant", "content": self.answer},
            ],
            "style": self.style,
        }


def _looks_like_json_list(path: Path, text: str) -> bool:
    if path.suffix == ".json":
        return True
    return path.suffix not in (".jsonl", ".txt") and text.lstrip().startswith("[")


def _json_items(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    """``(where, object)`` for every JSONL line or JSON list item, lazily."""
    return json_records(path, text, as_list=_looks_like_json_list(path, text))


def _read_text(path: str | os.PathLike[str]) -> tuple[Path, str]:
    source = Path(path)
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    try:
        return source, source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text") from None


def _is_jsonl_text(path: Path, text: str) -> bool:
    if path.suffix in (".jsonl", ".json"):
        return True
    if path.suffix == ".txt":
        return False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith(("{", "["))
    return False


def _chat(obj: Any, where: str) -> list[dict[str, str]] | None:
    """The message list of a study chat (a list) or a ``{"messages": ...}`` object."""
    if isinstance(obj, list):
        return validate_messages(obj, where)
    if isinstance(obj, Mapping) and "messages" in obj:
        return validate_messages(obj["messages"], where)
    return None


def _question_of(obj: Any, where: str) -> str:
    if isinstance(obj, str):
        question = obj
    elif (messages := _chat(obj, where)) is not None:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise DataError(f"{where}: the chat has no user message")
        question = users[0]
    elif isinstance(obj, Mapping):
        # "prompt" too, so that contrastive-pair files (builtin:honesty) are question files.
        key = "question" if "question" in obj or "prompt" not in obj else "prompt"
        if key not in obj:
            raise DataError(f"{where}: missing field 'question'")
        question = obj[key]
        if not isinstance(question, str):
            raise DataError(f"{where}: field {key!r} must be a string")
    else:
        raise DataError(f"{where}: expected a question object, got {type(obj).__name__}")
    if not question.strip():
        raise DataError(f"{where}: empty question")
    return question.strip()


def read_questions(path: str | os.PathLike[str], limit: int | None = None) -> list[str]:
    """Read questions from a text, JSONL or JSON file (see the module docstring).

    Args:
        path: the file.
        limit: keep only the first ``limit`` questions.

    Returns:
        The questions, stripped, in file order (duplicates kept: see :func:`dedupe_questions`).

    Raises:
        DataError: ``FILE:LINE: what is wrong`` (``FILE: item I`` in a JSON list), or a file
            with no questions.
    """
    check_int(limit, "limit", minimum=1, optional=True, error=DataError)
    source, text = _read_text(resolve_data_path(path, "questions"))
    questions: list[str] = []
    if _is_jsonl_text(source, text):
        for where, obj in _json_items(source, text):
            questions.append(_question_of(obj, where))
            if limit is not None and len(questions) >= limit:
                break
    else:
        for line in text.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                questions.append(stripped)
    if not questions:
        raise DataError(f"{source}: no questions in the file")
    return questions[:limit] if limit is not None else questions


def _style_of(obj: Any, where: str) -> str | None:
    style = obj.get("style") if isinstance(obj, Mapping) else None
    if style is not None and style not in STYLES:
        raise DataError(f"{where}: style {style!r} is not one of {', '.join(STYLES)} or null")
    return style


def _example_of(obj: Any, where: str) -> QAExample:
    messages = _chat(obj, where)
    if messages is not None:
        start = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        if start is None:
            raise DataError(f"{where}: the chat has no user message")
        answer = next((m for m in messages[start + 1 :] if m["role"] == "assistant"), None)
        if answer is None:
            raise DataError(f"{where}: the chat has no assistant message after the user's")
        question, reply = messages[start]["content"], answer["content"]
    elif isinstance(obj, Mapping):
        for key in ("question", "answer"):
            if key not in obj:
                raise DataError(f"{where}: missing field {key!r} (or 'messages')")
            if not isinstance(obj[key], str):
                raise DataError(f"{where}: field {key!r} must be a string")
        question, reply = obj["question"], obj["answer"]
    else:
        raise DataError(f"{where}: expected a chat or an object, got {type(obj).__name__}")
    if not question.strip():
        raise DataError(f"{where}: empty question")
    return QAExample(question.strip(), reply.strip(), _style_of(obj, where))


def read_qa(path: str | os.PathLike[str], limit: int | None = None) -> list[QAExample]:
    """Read Q/A examples: :func:`write_chat_jsonl`'s JSONL or the study's JSON chat list.

    Also accepted: ``{"question": ..., "answer": ..., "style": ...}`` objects. The question is
    the first user message, the answer the first assistant message after it (system messages
    are ignored); ``style`` is ``None`` when the file does not say.

    Raises:
        DataError: ``FILE:LINE`` (or ``FILE: item I``) of the first bad record, or no records.
    """
    check_int(limit, "limit", minimum=1, optional=True, error=DataError)
    source, text = _read_text(resolve_data_path(path, "qa"))
    examples: list[QAExample] = []
    for where, obj in _json_items(source, text):
        examples.append(_example_of(obj, where))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise DataError(f"{source}: no examples in the file")
    return examples


# -- writing ------------------------------------------------------------------------------------


def write_chat_jsonl(examples: Sequence[QAExample], path: str | os.PathLike[str]) -> None:
    """Write examples atomically, one ``{"messages": [user, assistant], "style"}`` a line."""
    if not examples:
        raise DataError(f"{path}: no examples to write")
    with atomic_write(path) as handle:
        for example in examples:
            handle.write(json.dumps(example.to_record(), ensure_ascii=False) + "\n")


def write_questions(questions: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Write questions atomically as text, one a line (readable by :func:`read_questions`)."""
    if not questions:
        raise DataError(f"{path}: no questions to write")
    with atomic_write(path) as handle:
        for question in questions:
            handle.write(_SPACES.sub(" ", question).strip() + "\n")


def _pair_record(pair: ContrastPair) -> dict[str, Any]:
    if pair.messages is not None and len(pair.messages) == 1 and pair.messages[0][0] == "user":
        return {"prompt": pair.messages[0][1], "positive": pair.positive, "negative": pair.negative}
    return pair.to_record()


def write_pairs_jsonl(pairs: Sequence[ContrastPair], path: str | os.PathLike[str]) -> None:
    """Write pairs atomically as JSONL that :func:`steerlab.load_pairs` reads.

    A pair whose only message is the user's is written ``{"prompt", "positive", "negative"}``;
    other pairs keep their ``messages`` (or are plain ``{"positive", "negative"}`` texts).
    """
    if not pairs:
        raise DataError(f"{path}: no pairs to write")
    with atomic_write(path) as handle:
        for pair in pairs:
            handle.write(json.dumps(_pair_record(pair), ensure_ascii=False) + "\n")
