"""Generation with positions="generated" prefills each prompt once for all its coefficients."""

from __future__ import annotations

import torch

import steerlab as sl
from steerlab.hooks import hook_count, hooked
from steerlab.layers import find_layers
from steerlab.sharing import shared_prompt_cache
from test_steer import random_vector

PROMPTS = ["I am happy today and", "Tell me a story", "What is the capital of France?"]
COEFFICIENTS = [-6.0, 0.0, 6.0]


def _widths_seen(model):
    seen: list[tuple[int, int]] = []

    def observe(args, kwargs) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        seen.append((int(hidden.shape[0]), int(hidden.shape[1])))

    return seen, hooked(inputs=[(find_layers(model).blocks[0], observe)])


def test_shared_prefill_equals_separate_rows(tiny):
    model, tokenizer = tiny
    vector = random_vector(model)
    kw = {"layers": [1], "positions": "generated", "scale": "unit", "max_new_tokens": 6}
    seen, observing = _widths_seen(model)
    with observing:
        shared = sl.generate(model, tokenizer, PROMPTS, vector, COEFFICIENTS, **kw)
    # One prefill of the 3 prompts without their last token, then 9 rows one token at a time.
    assert seen[0][0] == 3 and all(rows == 9 and width == 1 for rows, width in seen[1:])
    alone = sl.generate(model, tokenizer, PROMPTS, vector, COEFFICIENTS, batch_size=1, **kw)
    assert [(g.prompt, g.coefficient) for g in shared] == [(g.prompt, g.coefficient) for g in alone]
    assert [g.text for g in shared] == [g.text for g in alone]
    assert len({g.text for g in shared}) > 1  # the coefficients steer
    assert hook_count(model) == 0


def test_other_positions_do_not_prefill(llama):
    model, tokenizer = llama
    vector = random_vector(model)
    seen, observing = _widths_seen(model)
    with observing:
        sl.generate(
            model,
            tokenizer,
            PROMPTS,
            vector,
            COEFFICIENTS,
            layers=[1],
            scale="unit",
            max_new_tokens=2,
        )
    assert seen[0][0] == 9


def test_shared_cache_logits_match_the_repeated_batch(tiny):
    """The copied cache continues exactly as a prefill of the repeated rows."""
    model, tokenizer = tiny
    tokenizer.padding_side = "left"
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    cached = shared_prompt_cache(model, ids, mask, 3)
    assert cached is not None
    ((keyword, cache),) = cached.items()
    rep_ids, rep_mask = ids.repeat_interleave(3, 0), mask.repeat_interleave(3, 0)
    positions = (rep_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        full = model(input_ids=rep_ids, attention_mask=rep_mask, position_ids=positions).logits
        step = model(
            input_ids=rep_ids[:, -1:],
            attention_mask=rep_mask,
            position_ids=positions[:, -1:],
            **{keyword: cache},
        ).logits
    assert torch.allclose(step[:, -1], full[:, -1], atol=1e-5)


def test_nothing_to_share(llama):
    model, tokenizer = llama
    tokenizer.padding_side = "left"
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    assert shared_prompt_cache(model, enc["input_ids"], enc["attention_mask"], 1) is None
    short = tokenizer(["x", "Tell me"], return_tensors="pt", padding=True)
    assert int(short["attention_mask"][0].sum()) == 1  # a one-token prompt has no prefix
    assert shared_prompt_cache(model, short["input_ids"], short["attention_mask"], 3) is None
