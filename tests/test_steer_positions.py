"""Steering positions during ``generate``, checked against an independent reference.

The reference feeds the whole sequence at every step (no cache) and adds ``c·v`` at
positions chosen by the test's own bookkeeping; :func:`steerlab.steer` must give the same
logits whatever the cache (dynamic, static, none, one passed in by the caller), the padding,
the mask (or its absence) and ``num_return_sequences``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import steerlab as sl
from steerlab.hooks import hooked
from steerlab.layers import find_layers
from test_steer import random_vector

PROMPTS = ["I am happy today, the weather", "Tell me"]
COEF = 3.0
LAYERS = (0, 1)
STEPS = 4
# (row, absolute position, prompt width, cached width) -> steer this position?
PositionRule = Callable[[int, int], bool]


def _reference(model, vector, ids, mask, rule, steps=STEPS):
    """Greedy logits per step, re-feeding the whole sequence with explicit steering."""
    blocks = find_layers(model).blocks
    current = {"width": ids.shape[1]}

    def add(layer):
        def hook(hidden):
            seq = hidden.shape[1]
            select = torch.tensor(
                [[rule(row, pos) for pos in range(seq)] for row in range(hidden.shape[0])],
                dtype=hidden.dtype,
            )
            return hidden + COEF * vector[layer] * select.unsqueeze(-1)

        return hook

    out = []
    with hooked(outputs=[(blocks[layer], add(layer)) for layer in LAYERS]), torch.no_grad():
        for _ in range(steps):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            step = logits[:, -1]
            out.append(step)
            token = step.argmax(-1, keepdim=True)
            ids = torch.cat([ids, token], dim=1)
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            current["width"] = ids.shape[1]
    return torch.stack(out, dim=1)


def _steered(model, tokenizer, vector, positions, enc, **settings):
    settings = {
        "max_new_tokens": STEPS,
        "do_sample": False,
        "output_logits": True,
        "return_dict_in_generate": True,
        "pad_token_id": tokenizer.pad_token_id,
    } | settings
    with torch.no_grad(), sl.steer(model, vector, COEF, layers=list(LAYERS), positions=positions):
        out = model.generate(**enc, **settings)
    return torch.stack(out.logits, dim=1), out


def _rule(positions: str, width: int, last: list[int], start: int = 0) -> PositionRule:
    """Steer prompt tokens from ``start`` (or the last one) and/or generated tokens."""
    if positions == "prompt":
        return lambda row, pos: start <= pos < width
    return lambda row, pos: pos >= width or pos == last[row]


def _encode(tokenizer, prompts=PROMPTS):
    tokenizer.padding_side = "left"
    return tokenizer(prompts, return_tensors="pt", padding=True)


@pytest.mark.parametrize("positions", ["prompt", "generated"])
@pytest.mark.parametrize("cache", ["dynamic", "static", "none"])
def test_generate_matches_reference(tiny, arch, positions, cache):
    model, tokenizer = tiny
    vector = random_vector(model)
    enc = _encode(tokenizer)
    width = enc["input_ids"].shape[1]
    settings = {"use_cache": False} if cache == "none" else {}
    if cache == "static":
        if not getattr(model, "_can_compile_fullgraph", True) or arch in ("gpt2", "gpt_neox"):
            pytest.skip(f"{arch} has no static cache")
        settings = {"cache_implementation": "static"}
    steered, _ = _steered(model, tokenizer, vector, positions, enc, **settings)
    reference = _reference(
        model,
        vector,
        enc["input_ids"],
        enc["attention_mask"],
        _rule(positions, width, [width - 1] * len(PROMPTS)),
    )
    assert torch.allclose(steered, reference, atol=1e-4)
    unsteered = _reference(
        model, vector, enc["input_ids"], enc["attention_mask"], lambda r, p: False
    )
    assert not torch.allclose(steered, unsteered, atol=1e-3)


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_generate_without_attention_mask(llama, positions):
    model, tokenizer = llama
    vector = random_vector(model)
    enc = tokenizer(PROMPTS[:1], return_tensors="pt")
    width = enc["input_ids"].shape[1]
    steered, _ = _steered(model, tokenizer, vector, positions, {"input_ids": enc["input_ids"]})
    reference = _reference(
        model, vector, enc["input_ids"], enc["attention_mask"], _rule(positions, width, [width - 1])
    )
    assert torch.allclose(steered, reference, atol=1e-4)


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_num_return_sequences(llama, positions):
    model, tokenizer = llama
    vector = random_vector(model)
    enc = _encode(tokenizer)
    width = enc["input_ids"].shape[1]
    # top_k=1 sampling is deterministic, and sampling allows several sequences per prompt.
    steered, _ = _steered(
        model, tokenizer, vector, positions, enc, do_sample=True, top_k=1, num_return_sequences=2
    )
    ids = enc["input_ids"].repeat_interleave(2, dim=0)
    mask = enc["attention_mask"].repeat_interleave(2, dim=0)
    reference = _reference(model, vector, ids, mask, _rule(positions, width, [width - 1] * 4))
    assert torch.allclose(steered, reference, atol=1e-4)


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_continuing_a_conversation_with_the_callers_cache(llama, positions):
    model, tokenizer = llama
    vector = random_vector(model)
    enc = _encode(tokenizer, PROMPTS[:1])
    with torch.no_grad():
        first = model.generate(
            **enc,
            max_new_tokens=3,
            do_sample=False,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
        )
    turn = tokenizer([" and the sea"], return_tensors="pt")["input_ids"]
    ids = torch.cat([first.sequences, turn], dim=1)
    mask = torch.ones_like(ids)
    cache = first.past_key_values
    cached = cache.get_seq_length()
    steered, _ = _steered(
        model,
        tokenizer,
        vector,
        positions,
        {"input_ids": ids, "attention_mask": mask, "past_key_values": cache},
    )
    width = ids.shape[1]
    rule = _rule(positions, width, [width - 1], start=cached)
    reference = _reference(model, vector, ids, mask, rule)
    assert torch.allclose(steered, reference, atol=1e-4)


def test_right_padded_forward_steers_each_rows_last_token(llama):
    model, tokenizer = llama
    vector = random_vector(model)
    tokenizer.padding_side = "right"
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    lengths = enc["attention_mask"].sum(-1).tolist()
    with torch.no_grad(), sl.steer(model, vector, COEF, layers=list(LAYERS), positions="generated"):
        steered = model(**enc).logits
    blocks = find_layers(model).blocks

    def add(layer):
        def hook(hidden):
            select = torch.zeros((*hidden.shape[:2], 1))
            for row, n in enumerate(lengths):
                select[row, n - 1] = 1
            return hidden + COEF * vector[layer] * select

        return hook

    with hooked(outputs=[(blocks[layer], add(layer)) for layer in LAYERS]), torch.no_grad():
        reference = model(**enc).logits
    assert torch.allclose(steered, reference, atol=1e-5)


def test_two_generates_in_one_block_are_independent(llama):
    model, tokenizer = llama
    vector = random_vector(model)
    enc = _encode(tokenizer)
    width = enc["input_ids"].shape[1]
    settings = {"max_new_tokens": STEPS, "do_sample": False, "output_logits": True}
    settings |= {"return_dict_in_generate": True, "pad_token_id": tokenizer.pad_token_id}
    with torch.no_grad(), sl.steer(model, vector, COEF, layers=list(LAYERS), positions="prompt"):
        first = torch.stack(model.generate(**enc, **settings).logits, dim=1)
        second = torch.stack(model.generate(**enc, **settings, use_cache=False).logits, dim=1)
        third = torch.stack(model.generate(**enc, **settings).logits, dim=1)
    reference = _reference(
        model, vector, enc["input_ids"], enc["attention_mask"], _rule("prompt", width, [])
    )
    for got in (first, second, third):
        assert torch.allclose(got, reference, atol=1e-4)
