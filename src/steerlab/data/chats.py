"""Chat files: reading lists of ``{"role", "content"}`` messages from JSON or JSONL.

Accepted files:

* a JSON list of chats, each a list of messages (the format of the deception study:
  ``[[{"role": "user", ...}, {"role": "assistant", ...}], ...]``), or each an object
  ``{"messages": [...]}``;
* JSONL with one chat a line, either ``{"messages": [...]}`` or a bare message list;
* ``builtin:NAME`` for a shipped set of chats (:mod:`steerlab.data.registry`).

Every chat is checked with :func:`steerlab.chat.validate_messages`; a bad one is a one-line
:class:`~steerlab.errors.DataError` naming ``FILE:LINE`` (JSONL) or ``FILE: item N`` (JSON).
Fine-tuning (:mod:`steerlab.tuning`), model diffs and the ``chat``/``diff`` commands read
chats here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from steerlab.chat import validate_messages
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError
from steerlab.provenance import sha256_of_records
from steerlab.validation import check_int

Chat = list[dict[str, str]]
"""A chat: messages ``{"role": ..., "content": ...}`` in order."""


def _jsonl_items(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        yield f"{path}:{number}", obj


def _read_items(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, item)`` for each chat of a JSON or JSONL file, lazily."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    if path.suffix == ".jsonl" or not text.lstrip().startswith("["):
        yield from _jsonl_items(path, text)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # A JSONL file of bare message lists also starts with "[": read it line by line.
        if exc.msg == "Extra data":
            yield from _jsonl_items(path, text)
            return
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of chats")
    for i, item in enumerate(data):
        yield f"{path}: item {i}", item


def chat_from_item(item: Any, where: str, require_assistant: bool = True) -> Chat:
    """Validate one chat: a message list or ``{"messages": [...]}``.

    Args:
        item: the parsed JSON value.
        where: location for error messages (``FILE:LINE`` or ``FILE: item N``).
        require_assistant: fail on chats with no assistant message (nothing to learn).

    Raises:
        DataError: naming ``where`` and what is wrong.
    """
    if isinstance(item, Mapping):
        if "messages" not in item:
            raise DataError(f"{where}: missing field 'messages'")
        messages = item["messages"]
    elif isinstance(item, list):
        messages = item
    else:
        raise DataError(
            f"{where}: expected a message list or an object with 'messages', "
            f"got {type(item).__name__}"
        )
    chat = validate_messages(messages, where)
    if require_assistant and not any(m["role"] == "assistant" for m in chat):
        raise DataError(f"{where}: the chat has no assistant message (nothing to train on)")
    return chat


def load_chats(
    path: str | os.PathLike[str], limit: int | None = None, require_assistant: bool = True
) -> list[Chat]:
    """Read chats from a JSON or JSONL file (see the module docstring for formats).

    Args:
        path: the file.
        limit: keep only the first ``limit`` chats.
        require_assistant: fail on chats without an assistant message.

    Returns:
        The chats, each a list of ``{"role", "content"}`` dicts.

    Raises:
        DataError: ``FILE:LINE`` / ``FILE: item N`` and the problem, for the first bad chat;
            also for a missing or empty file.
    """
    check_int(limit, "limit", minimum=1, optional=True, error=DataError)
    source = Path(resolve_data_path(path, "chats"))
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    chats: list[Chat] = []
    for where, item in _read_items(source):
        chats.append(chat_from_item(item, where, require_assistant))
        if limit is not None and len(chats) >= limit:
            break
    if not chats:
        raise DataError(f"{source}: no chats in the file")
    return chats


def chats_sha256(chats: Sequence[Sequence[Mapping[str, str]]]) -> str:
    """sha256 of the chats (the data hash recorded with a fine-tune)."""
    return sha256_of_records([dict(m) for m in chat] for chat in chats)
