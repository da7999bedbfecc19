"""Chat data for fine-tuning: loading, tokenising with an assistant-only loss mask, batching.

Accepted files:

* a JSON list of chats, each a list of messages (the format of the deception study:
  ``[[{"role": "user", ...}, {"role": "assistant", ...}], ...]``), or each an object
  ``{"messages": [...]}``;
* JSONL with one chat a line, either ``{"messages": [...]}`` or a bare message list.

The loss is computed on assistant tokens only: the content of every assistant turn plus the
end-of-turn token the chat template puts after it, never the system or user text nor the
assistant header. Spans are found from the chat template itself (see :func:`assistant_spans`)
so the mask follows whatever layout the model's template uses.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import format_chat, needs_special_tokens, validate_messages
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError
from steerlab.provenance import sha256_of_records

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
Chat = list[dict[str, str]]


# --------------------------------------------------------------------------- loading


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
    if limit is not None and limit < 1:
        raise DataError(f"limit {limit} must be at least 1")
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


# --------------------------------------------------------------------------- tokenising


def _special_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    strings = set(getattr(tokenizer, "all_special_tokens", []) or [])
    added = getattr(tokenizer, "added_tokens_encoder", None) or {}
    strings.update(added)
    return sorted((s for s in strings if s), key=len, reverse=True)


def _render(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], prompt: bool
) -> str | None:
    if not messages:
        return None
    try:
        return format_chat(tokenizer, messages, add_generation_prompt=prompt)
    except Exception:  # templates may refuse partial chats (role alternation checks...)
        return None


def _span_end(tail: str, content: str) -> int:
    """Length of an assistant turn's rendering, without whitespace after its end token."""
    end = len(tail.rstrip())
    if tail.startswith(content):
        end = max(end, len(content))
    return end


def assistant_spans(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character spans of its assistant turns.

    For assistant turn ``i`` the span starts where the rendering of ``messages[:i]`` with
    the generation prompt ends (so the assistant header is excluded) and ends where the
    rendering of ``messages[: i + 1]`` ends, less trailing whitespace (so the end-of-turn
    token is included, the newline after it is not). When a template renders earlier turns
    differently from the whole chat (some strip reasoning from history), the span falls back
    to the content found in the text, plus a special token right after it.

    Args:
        tokenizer: the model's tokenizer (with or without a chat template).
        messages: the chat.

    Returns:
        ``(text, spans)``: the full rendering (no generation prompt) and ``[(start, end)]``.
    """
    full = format_chat(tokenizer, messages, add_generation_prompt=False)
    specials = _special_strings(tokenizer)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        content = message["content"]
        prefix = _render(tokenizer, messages[:i], prompt=True)
        through = _render(tokenizer, messages[: i + 1], prompt=False)
        if (
            prefix is not None
            and through is not None
            and len(prefix) >= cursor
            and through.startswith(prefix)
            and full.startswith(through)
        ):
            start = len(prefix)
            end = start + _span_end(through[start:], content)
        else:
            found = full.find(content, cursor) if content else -1
            if found < 0:
                continue
            start, end = found, found + len(content)
            for special in specials:
                if full.startswith(special, end):
                    end += len(special)
                    break
        if end > start:
            spans.append((start, end))
            cursor = end
    return full, spans


def _labels_from_offsets(
    ids: list[int], offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[int]:
    labels = [IGNORE_INDEX] * len(ids)
    for index, (token_start, token_end) in enumerate(offsets):
        if token_end <= token_start:
            continue  # tokens with no text (added BOS...)
        for start, end in spans:
            if token_start < end and token_end > start:
                labels[index] = ids[index]
                break
    return labels


def _tokenize_segments(
    tokenizer: PreTrainedTokenizerBase, text: str, spans: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    """Slow-tokenizer fallback: tokenise the pieces between span boundaries separately."""
    cuts = sorted({0, len(text), *(b for span in spans for b in span)})
    ids: list[int] = []
    labels: list[int] = []
    if needs_special_tokens(tokenizer, text):
        specials = tokenizer.build_inputs_with_special_tokens([])
        ids.extend(specials)
        labels.extend([IGNORE_INDEX] * len(specials))
    for start, end in itertools.pairwise(cuts):
        piece = tokenizer.encode(text[start:end], add_special_tokens=False)
        inside = any(s <= start and end <= e for s, e in spans)
        ids.extend(piece)
        labels.extend(piece if inside else [IGNORE_INDEX] * len(piece))
    return ids, labels


def tokenize_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Mapping[str, str]],
    max_length: int,
) -> dict[str, list[int]]:
    """Tokenise a chat for supervised fine-tuning with an assistant-only loss mask.

    Args:
        tokenizer: the model's tokenizer; a fast tokenizer gives exact character offsets
            (a slow one is handled by tokenising the pieces between span boundaries).
        messages: the chat (``[{"role", "content"}, ...]``).
        max_length: truncate to this many tokens (from the right).

    Returns:
        ``{"input_ids", "attention_mask", "labels"}`` as lists; ``labels`` is -100 except on
        assistant tokens (content plus the template's end-of-turn token), where it equals
        ``input_ids`` (transformers shifts labels inside the model).
    """
    text, spans = assistant_spans(tokenizer, messages)
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(
            text,
            add_special_tokens=needs_special_tokens(tokenizer, text),
            return_offsets_mapping=True,
        )
        ids = list(encoded["input_ids"])
        labels = _labels_from_offsets(ids, encoded["offset_mapping"], spans)
    else:
        ids, labels = _tokenize_segments(tokenizer, text, spans)
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


class ChatDataset(torch.utils.data.Dataset[dict[str, list[int]]]):
    """Tokenised chats, ready for :class:`ChatCollator`.

    Chats left with no assistant token after truncation are dropped (and counted in
    ``dropped``); they would contribute nothing but a division by zero.

    Args:
        tokenizer: the model's tokenizer.
        chats: the chats.
        max_length: tokens per example at most.

    Raises:
        DataError: if no chat keeps an assistant token.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        chats: Sequence[Sequence[Mapping[str, str]]],
        max_length: int,
    ) -> None:
        self.examples: list[dict[str, list[int]]] = []
        self.dropped = 0
        for chat in chats:
            example = tokenize_chat(tokenizer, chat, max_length)
            if any(label != IGNORE_INDEX for label in example["labels"]):
                self.examples.append(example)
            else:
                self.dropped += 1
        if self.dropped:
            logger.warning(
                "%d of %d chats have no assistant token within max_length=%d; skipped",
                self.dropped,
                len(chats),
                max_length,
            )
        if not self.examples:
            raise DataError(
                f"none of the {len(chats)} chats has an assistant token within "
                f"max_length={max_length}; raise max_length"
            )

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.examples[index]


@dataclass(frozen=True)
class ChatCollator:
    """Right-pad examples into a batch: ids with ``pad_token_id``, mask 0, labels -100.

    Attributes:
        pad_token_id: id used to pad ``input_ids``.
        pad_to_multiple_of: round the padded length up to a multiple of this (tensor cores).
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        """Pad and stack ``features`` into ``{"input_ids", "attention_mask", "labels"}``."""
        length = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            multiple = self.pad_to_multiple_of
            length = -(-length // multiple) * multiple
        batch = {
            "input_ids": torch.full((len(features), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(features), length), dtype=torch.long),
            "labels": torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long),
        }
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            batch["input_ids"][row, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
            mask = feature.get("attention_mask") or [1] * n
            batch["attention_mask"][row, :n] = torch.tensor(mask, dtype=torch.long)
            labels = feature.get("labels") or feature["input_ids"]
            batch["labels"][row, :n] = torch.tensor(labels, dtype=torch.long)
        return batch


def collator_for(tokenizer: PreTrainedTokenizerBase) -> ChatCollator:
    """A :class:`ChatCollator` padding with the tokenizer's pad token (else its EOS)."""
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    if pad is None:
        raise DataError("the tokenizer has neither a pad nor an EOS token; set one")
    return ChatCollator(int(pad))
