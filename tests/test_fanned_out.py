"""hooks.fanned_out: sharing the bottom blocks equals running the repeated batch."""

from __future__ import annotations

import pytest
import torch

from steerlab.hooks import fanned_out, hook_count
from steerlab.layers import find_layers

TEXTS = ["I am happy today and", "Tell me", "What is the capital of France? Paris"]


def _encode(tokenizer, side: str):
    tokenizer.padding_side = side
    encoded = tokenizer(TEXTS, return_tensors="pt", padding=True)
    tokenizer.padding_side = "left"
    return encoded["input_ids"], encoded["attention_mask"]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("start", [1, 2])
def test_fanned_out_equals_repeated_batch(tiny, side: str, start: int):
    model, tokenizer = tiny
    ids, mask = _encode(tokenizer, side)
    repeats = 3
    with torch.no_grad():
        expected = model(
            input_ids=ids.repeat_interleave(repeats, 0),
            attention_mask=mask.repeat_interleave(repeats, 0),
            use_cache=False,
        ).logits
        with fanned_out(find_layers(model).blocks, start, repeats):
            shared = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    assert shared.shape == expected.shape
    real = mask.repeat_interleave(repeats, 0).bool()
    assert torch.allclose(shared[real], expected[real], atol=1e-5)
    assert hook_count(model) == 0


def test_repeats_one_and_start_past_the_end_change_nothing(llama):
    model, tokenizer = llama
    ids, mask = _encode(tokenizer, "left")
    blocks = find_layers(model).blocks
    with torch.no_grad():
        base = model(input_ids=ids, attention_mask=mask).logits
        with fanned_out(blocks, 1, 1):
            assert hook_count(model) == 0
            one = model(input_ids=ids, attention_mask=mask).logits
        with fanned_out(blocks, len(blocks), 4):
            end = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(base, one) and torch.equal(base, end)


def test_several_passes_in_one_context(llama):
    """The per-pass memo is reset: a second pass of another batch size is right too."""
    model, tokenizer = llama
    blocks = find_layers(model).blocks
    with torch.no_grad(), fanned_out(blocks, 2, 2):
        for texts in (TEXTS, TEXTS[:1]):
            enc = tokenizer(texts, return_tensors="pt", padding=True)
            out = model(**enc, use_cache=False).logits
            assert out.shape[0] == 2 * len(texts)
            assert torch.allclose(out[0::2], out[1::2], atol=1e-6)


def test_nothing_left_after_an_exception(llama):
    model, _ = llama
    blocks = find_layers(model).blocks
    with pytest.raises(RuntimeError, match="inside"), fanned_out(blocks, 1, 3):
        assert hook_count(model) == len(blocks) - 1
        raise RuntimeError("inside")
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="out of range"), fanned_out(blocks, 9, 3):
        pass
    assert hook_count(model) == 0


def test_exception_inside_the_forward_leaves_nothing(llama):
    model, _ = llama
    blocks = find_layers(model).blocks
    with pytest.raises(TypeError, match="hidden states"), fanned_out(blocks, 1, 2):
        blocks[1]()  # a call without hidden states fails inside the hook
    assert hook_count(model) == 0
