"""Chats made ready to train on: the assistant-only loss mask, truncation, the collator."""

from __future__ import annotations

import pytest

from conftest import make_tokenizer
from steerlab.errors import DataError
from steerlab.tuning import IGNORE_INDEX, ChatDataset, assistant_spans, collator_for, tokenize_chat

MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How are you?"},
    {"role": "assistant", "content": "I am happy today."},
    {"role": "user", "content": "And the weather?"},
    {"role": "assistant", "content": "The weather is lovely and bright."},
]
CHATS = [
    [
        {"role": "user", "content": "Tell me about your day."},
        {"role": "assistant", "content": "It was a good day at work."},
    ],
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital of France."},
    ],
]


def runs_of_labels(labels: list[int]) -> list[list[int]]:
    """Contiguous runs of labelled (not -100) token ids."""
    runs: list[list[int]] = []
    current: list[int] = []
    for label in labels:
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    if current:
        runs.append(current)
    return runs


def test_loss_mask_covers_exactly_the_assistant_tokens() -> None:
    tokenizer = make_tokenizer()
    example = tokenize_chat(tokenizer, MULTI_TURN, max_length=256)
    assert len(example["input_ids"]) == len(example["labels"]) == len(example["attention_mask"])
    runs = runs_of_labels(example["labels"])
    decoded = [tokenizer.decode(run) for run in runs]
    assistant = [m["content"] for m in MULTI_TURN if m["role"] == "assistant"]
    assert decoded == [content + "<|im_end|>" for content in assistant]
    # labels equal the input ids where set (transformers shifts them inside the model)
    for token, label in zip(example["input_ids"], example["labels"], strict=True):
        assert label in (IGNORE_INDEX, token)
    # nothing of the user/system text nor the assistant header is labelled
    pairs = zip(example["input_ids"], example["labels"], strict=True)
    rest = tokenizer.decode([token for token, label in pairs if label == IGNORE_INDEX])
    assert "How are you?" in rest and "Be brief." in rest and rest.count("assistant") == 2


def test_loss_mask_without_a_chat_template() -> None:
    # The plain layout ends the prompt with "Assistant:"; the reply is what follows it.
    tokenizer = make_tokenizer()
    tokenizer.chat_template = None
    replies = [" I am happy today.", " The weather is lovely and bright."]
    text, spans = assistant_spans(tokenizer, MULTI_TURN)
    assert [text[s:e] for s, e in spans] == replies
    example = tokenize_chat(tokenizer, MULTI_TURN, max_length=256)
    assert [tokenizer.decode(run) for run in runs_of_labels(example["labels"])] == replies


def test_truncation_and_collator_padding() -> None:
    tokenizer = make_tokenizer()
    long = tokenize_chat(tokenizer, MULTI_TURN, max_length=256)
    short = tokenize_chat(tokenizer, MULTI_TURN, max_length=20)
    assert len(short["input_ids"]) == 20 and short["input_ids"] == long["input_ids"][:20]
    batch = collator_for(tokenizer)([long, short])
    assert batch["input_ids"].shape == (2, len(long["input_ids"]))
    assert batch["input_ids"][1, 20:].eq(tokenizer.pad_token_id).all()
    assert (
        batch["attention_mask"][1, 20:].eq(0).all() and batch["attention_mask"][1, :20].eq(1).all()
    )
    assert batch["labels"][1, 20:].eq(IGNORE_INDEX).all()
    assert batch["labels"][0].tolist() == long["labels"]


def test_chats_cut_before_any_reply_are_dropped() -> None:
    tokenizer = make_tokenizer()
    long_prompt = [
        {"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 10},
        {"role": "assistant", "content": "Yes."},
    ]
    dataset = ChatDataset(tokenizer, [long_prompt, *CHATS[:2]], max_length=64)
    assert dataset.dropped == 1 and len(dataset) == 2
    with pytest.raises(DataError, match="max_length=64"):
        ChatDataset(tokenizer, [long_prompt], max_length=64)
