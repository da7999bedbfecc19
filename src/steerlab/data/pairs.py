"""Contrastive pairs: the input of vector extraction.

JSONL, one object per line, any of:

* ``{"positive": TEXT, "negative": TEXT}``: two plain texts (no chat template);
* ``{"prompt": USER_MESSAGE, "positive": REPLY, "negative": REPLY}``, optional ``"system"``:
  the prompt is rendered with the model's chat template and each side is an assistant reply;
* ``{"messages": [{role, content}, ...], "positive": REPLY, "negative": REPLY}``: a shared
  chat history, then the two replies.

A JSON file holding a list of such objects works too, and so does the A/B format of
Contrastive Activation Addition (``question``, ``answer_matching_behavior``,
``answer_not_matching_behavior``): the question is the user message and each side is the
answer letter, e.g. ``"(A"``, so that the last token read is the letter itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import format_chat, validate_messages
from steerlab.data.registry import builtin_set, resolve_data_path
from steerlab.errors import DataError
from steerlab.provenance import sha256_of_records
from steerlab.record import TextExample
from steerlab.validation import check_int


@dataclass(frozen=True)
class ContrastPair:
    """One contrastive pair.

    Attributes:
        positive: text (or assistant reply) showing the behaviour.
        negative: text (or assistant reply) showing its opposite.
        messages: chat history before the replies; ``None`` for plain texts.
    """

    positive: str
    negative: str
    messages: tuple[tuple[str, str], ...] | None = None

    def to_record(self) -> dict[str, Any]:
        """JSON-able form (also what the data hash is computed from)."""
        record: dict[str, Any] = {"positive": self.positive, "negative": self.negative}
        if self.messages is not None:
            record["messages"] = [{"role": r, "content": c} for r, c in self.messages]
        return record


def _pair_from_object(obj: Any, where: str) -> ContrastPair:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "question" in obj and "answer_matching_behavior" in obj:
        return _pair_from_ab(obj, where)
    for key in ("positive", "negative"):
        if key not in obj:
            raise DataError(f"{where}: missing field {key!r}")
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise DataError(f"{where}: field {key!r} must be a non-empty string")
    messages: list[dict[str, str]] | None = None
    if "messages" in obj:
        messages = validate_messages(obj["messages"], where)
    elif "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise DataError(f"{where}: field 'prompt' must be a non-empty string")
        messages = [{"role": "user", "content": obj["prompt"]}]
    if "system" in obj:
        if not isinstance(obj["system"], str):
            raise DataError(f"{where}: field 'system' must be a string")
        if messages is None:
            raise DataError(f"{where}: 'system' needs a 'prompt' or 'messages'")
        messages = [{"role": "system", "content": obj["system"]}, *messages]
    return ContrastPair(
        positive=obj["positive"],
        negative=obj["negative"],
        messages=None if messages is None else tuple((m["role"], m["content"]) for m in messages),
    )


def _answer_letter(answer: Any, where: str, field: str) -> str:
    if not isinstance(answer, str) or not answer.strip():
        raise DataError(f"{where}: field {field!r} must be a non-empty string like '(A)'")
    text = answer.strip()
    # "(A)" -> "(A": the activation is read at the letter, not at the closing parenthesis.
    return text[:-1] if text.startswith("(") and text.endswith(")") else text


def _pair_from_ab(obj: dict[str, Any], where: str) -> ContrastPair:
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field 'question' must be a non-empty string")
    if "answer_not_matching_behavior" not in obj:
        raise DataError(f"{where}: missing field 'answer_not_matching_behavior'")
    positive = _answer_letter(obj["answer_matching_behavior"], where, "answer_matching_behavior")
    negative = _answer_letter(
        obj["answer_not_matching_behavior"], where, "answer_not_matching_behavior"
    )
    return ContrastPair(positive, negative, (("user", question),))


def json_records(path: Path, text: str, as_list: bool) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, object)`` for each JSONL line or JSON list item, lazily.

    Lazily, so that a caller checking each object reports the first bad line. ``where`` is
    ``FILE:LINE`` for JSONL and ``FILE: item N`` for a JSON list.
    """
    if not as_list:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            yield f"{path}:{number}", obj
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list, got {type(data).__name__}")
    for i, item in enumerate(data):
        yield f"{path}: item {i}", item


def _read_json_items(path: Path) -> Iterator[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8")
    jsonl = path.suffix == ".jsonl" or (
        path.suffix != ".json" and not text.lstrip().startswith("[")
    )
    return json_records(path, text, as_list=not jsonl)


def load_pairs(path: str | os.PathLike[str], limit: int | None = None) -> list[ContrastPair]:
    """Read contrastive pairs from a JSONL/JSON file (see the module docstring for formats).

    Args:
        path: the file; ``builtin:NAME`` reads a set shipped with steerlab. A slice after
            the name keeps part of it, as in Python: ``builtin:happy_sad[:48]`` the first 48
            pairs, ``pairs.jsonl[48:]`` all but those (e.g. held out from extraction).
        limit: keep only the first ``limit`` pairs (after the slice).

    Raises:
        DataError: ``FILE:LINE: what is wrong`` for the first bad line, an empty file, or an
            empty slice.
    """
    check_int(limit, "limit", minimum=1, optional=True, error=DataError)
    path, part = split_slice(path)
    source = Path(resolve_data_path(path, "pairs"))
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    try:
        pairs = [_pair_from_object(obj, where) for where, obj in _read_json_items(source)]
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text") from None
    if not pairs:
        raise DataError(f"{source}: no pairs in the file")
    if part is not None:
        pairs = pairs[part]
        if not pairs:
            raise DataError(f"{source}: the slice [{_slice_text(part)}] keeps no pairs")
    return pairs[:limit] if limit is not None else pairs


_SLICE = re.compile(r"^(?P<path>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def split_slice(path: str | os.PathLike[str]) -> tuple[str | os.PathLike[str], slice | None]:
    """``"builtin:happy_sad[48:]"`` -> ``("builtin:happy_sad", slice(48, None))``.

    A path that exists as written, brackets and all, is a file name, not a slice.
    """
    text = os.fspath(path)
    match = _SLICE.match(text)
    if match is None or Path(text).exists():
        return path, None
    start, stop = (int(match[k]) if match[k] else None for k in ("start", "stop"))
    return match["path"], slice(start, stop)


def _slice_text(part: slice) -> str:
    """``slice(48, None)`` -> ``"48:"``."""
    return f"{'' if part.start is None else part.start}:{'' if part.stop is None else part.stop}"


def pairs_from_ab(path: str | os.PathLike[str], limit: int | None = None) -> list[ContrastPair]:
    """Read a CAA A/B file (``question``, ``answer_matching_behavior``, ...) as pairs."""
    return load_pairs(path, limit=limit)


def builtin_path(name: str) -> Path:
    """Path of a built-in set readable as pairs (see :mod:`steerlab.data.registry`)."""
    return builtin_set(name, "pairs").path


def builtin_pairs(name: str, limit: int | None = None) -> list[ContrastPair]:
    """Pairs of a built-in set: ``happy_sad`` (mood), ``honesty`` (true vs false answers),
    ``honesty_ab`` (A/B dilemmas)."""
    return load_pairs(builtin_path(name), limit=limit)


def pair_examples(
    tokenizer: PreTrainedTokenizerBase, pair: ContrastPair
) -> tuple[TextExample, TextExample]:
    """The positive and negative texts the model reads, with the reply marked as the span."""
    if pair.messages is None:
        return TextExample(pair.positive), TextExample(pair.negative)
    prompt = format_chat(
        tokenizer, [{"role": r, "content": c} for r, c in pair.messages], add_generation_prompt=True
    )
    return (
        TextExample(prompt + pair.positive, span_start=len(prompt)),
        TextExample(prompt + pair.negative, span_start=len(prompt)),
    )


def pairs_sha256(pairs: Sequence[ContrastPair]) -> str:
    """sha256 of the pairs' records (the data hash stored in vectors)."""
    return sha256_of_records(p.to_record() for p in pairs)
