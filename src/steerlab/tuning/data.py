"""Chats made ready to train on: tokenising with an assistant-only loss mask, and batching.

The loss is computed on assistant tokens only: the content of every assistant turn plus the
end-of-turn token the chat template puts after it, never the system or user text nor the
assistant header. Spans are found from the chat template itself (see :func:`assistant_spans`)
so the mask follows whatever layout the model's template uses.

Reading chat files moved to :mod:`steerlab.data.chats`; :data:`Chat`, :func:`load_chats`,
:func:`chat_from_item` and :func:`chats_sha256` are re-exported here for the import paths of
earlier versions (deprecated import path: use ``steerlab.data.chats``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import format_chat, needs_special_tokens
from steerlab.data.chats import Chat, chat_from_item, chats_sha256, load_chats
from steerlab.errors import DataError

__all__ = [
    "IGNORE_INDEX",
    "Chat",
    "ChatCollator",
    "ChatDataset",
    "assistant_spans",
    "chat_from_item",
    "chats_sha256",
    "collator_for",
    "load_chats",
    "tokenize_chat",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""The label of tokens the loss ignores (transformers' convention)."""


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
