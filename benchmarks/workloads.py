"""Inputs that several benchmarks share: the chat prompt, exact-length greedy generation,
the batches ``record`` builds, and the fine-tuning data and sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

import steerlab
from steerlab.record import TextExample, collate_tokens, tokenize_examples

PROMPT = "Tell me about your plans for the weekend, and what you are looking forward to."
# Fine-tuning benchmarks (5 and 7): rows per optimiser step and tokens per chat.
TRAIN_BATCH = 4
TRAIN_MAX_LENGTH = 128


def greedy_kwargs(tokenizer: Any, new_tokens: int) -> dict[str, Any]:
    """``generate`` options for greedy decoding of exactly ``new_tokens`` tokens.

    ``min_new_tokens = max_new_tokens``, so EOS cannot end a row (or a variant) early.
    """
    return dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=tokenizer.pad_token_id,
    )


def chat_inputs(tokenizer: Any, rows: int) -> dict[str, torch.Tensor]:
    """:data:`PROMPT` as a chat, ``rows`` identical rows: ``input_ids`` (rows, seq) etc."""
    text = steerlab.format_chat(tokenizer, [{"role": "user", "content": PROMPT}])
    # The chat template already starts with the model's special tokens.
    return dict(tokenizer([text] * rows, return_tensors="pt", add_special_tokens=False))


def generate_exact(model: Any, inputs: dict[str, torch.Tensor], kwargs: dict[str, Any]) -> Any:
    """``model.generate``, checked to have produced exactly ``max_new_tokens`` tokens."""
    out = model.generate(**inputs, **kwargs)
    produced = out.shape[1] - inputs["input_ids"].shape[1]
    if produced != kwargs["max_new_tokens"]:
        raise RuntimeError(f"generate produced {produced} tokens, not {kwargs['max_new_tokens']}")
    return out


def record_batches(tokenizer: Any, examples: Sequence[TextExample], batch_size: int) -> list[Any]:
    """The batches :func:`steerlab.record` runs for ``examples``.

    Tokenised without padding, sorted by length, right-padded per batch of ``batch_size``
    (:func:`steerlab.record.collate_tokens`); each has ``input_ids`` and ``attention_mask``
    of shape (batch, seq).
    """
    tokenized = tokenize_examples(tokenizer, examples, None)
    order = sorted(range(len(examples)), key=lambda i: len(tokenized[i][0]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return [
        collate_tokens([tokenized[i] for i in order[start : start + batch_size]], pad_id)
        for start in range(0, len(order), batch_size)
    ]


def honesty_questions() -> list[str]:
    """The user question of each builtin honesty pair."""
    return [pair.messages[-1][1] for pair in steerlab.builtin_pairs("honesty") if pair.messages]


def honesty_chats() -> list[list[dict[str, str]]]:
    """One chat per builtin honesty pair: its question, answered with the negative reply."""
    return [
        [
            {"role": "user", "content": pair.messages[-1][1]},
            {"role": "assistant", "content": pair.negative},
        ]
        for pair in steerlab.builtin_pairs("honesty")
        if pair.messages
    ]
