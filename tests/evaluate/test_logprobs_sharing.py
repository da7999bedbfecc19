"""Likelihood passes share the blocks below the first steered layer: same results, less work."""

from __future__ import annotations

import pytest
import torch

from steerlab.evaluate.logprobs import (
    continuation_logprobs,
    next_token_logprobs,
    token_nll,
)
from steerlab.hooks import hook_count, hooked
from steerlab.layers import find_layers
from steerlab.sharing import plan_chunks, shared_blocks
from steerlab.steer import SteerSpec
from test_steer import random_vector

PROMPTS = ["I am happy today and", "Tell me", "What is the capital of France? Paris"]
ANSWERS = [" yes", " a story about it", " Paris"]
COEFFICIENTS = (-2.0, 0.0, 1.5)


def _rows() -> tuple[list[str], list[str], list[float]]:
    # Coefficient-major, as the sweeps' tasks order their rows.
    prompts, answers, coefficients = [], [], []
    for c in COEFFICIENTS:
        prompts += PROMPTS
        answers += ANSWERS
        coefficients += [c] * len(PROMPTS)
    return prompts, answers, coefficients


def _batch_sizes_seen(model):
    """Record the batch size every block is called with."""
    blocks = find_layers(model).blocks
    seen: dict[int, list[int]] = {i: [] for i in range(len(blocks))}

    def observer(i: int):
        def observe(args, kwargs) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            seen[i].append(int(hidden.shape[0]))

        return observe

    return seen, hooked(inputs=[(b, observer(i)) for i, b in enumerate(blocks)])


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_shared_equals_unshared_on_every_architecture(tiny, positions: str):
    model, tokenizer = tiny
    vector = random_vector(model)
    spec = SteerSpec(layers=[1, 2], positions=positions, normalize=True)
    prompts, answers, coefficients = _rows()
    texts = [p + a for p, a in zip(prompts, answers, strict=True)]
    token_ids = [[5, 17, 40]] * len(prompts)
    kw = {"vector": vector, "spec": spec}
    seen, observing = _batch_sizes_seen(model)
    with observing:
        shared = (
            next_token_logprobs(
                model, tokenizer, prompts, token_ids, coefficients, **kw, batch_size=9
            ),
            token_nll(model, tokenizer, texts, coefficients, **kw, batch_size=9),
            continuation_logprobs(
                model, tokenizer, prompts, answers, coefficients, **kw, batch_size=9
            ),
        )
    # Block 0 ran each distinct input once (3 rows); block 1 is fanned out at its input
    # (after this observer), so block 2 sees the 9 coefficient rows.
    assert seen[0] == [3, 3, 3] and seen[2] == [9, 9, 9]
    alone = (  # batch 1: nothing shared, nothing batched
        next_token_logprobs(model, tokenizer, prompts, token_ids, coefficients, batch_size=1, **kw),
        token_nll(model, tokenizer, texts, coefficients, batch_size=1, **kw),
        continuation_logprobs(model, tokenizer, prompts, answers, coefficients, batch_size=1, **kw),
    )
    for a, b in zip(shared[0] + shared[1], alone[0] + alone[1], strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4), (a, b)
    for (lp_a, n_a), (lp_b, n_b) in zip(shared[2], alone[2], strict=True):
        assert n_a == n_b and lp_a == pytest.approx(lp_b, abs=1e-4)
    # The coefficients really differ (the test would pass trivially otherwise).
    assert not torch.allclose(shared[0][0], shared[0][3], atol=1e-3)
    assert hook_count(model) == 0


def test_first_layer_steered_or_everywhere_shares_nothing(llama):
    model, tokenizer = llama
    vector = random_vector(model)
    assert shared_blocks(model, vector, SteerSpec(layers=[2, 3])) == 2
    assert shared_blocks(model, vector, SteerSpec(layers="all")) == 0
    assert (
        shared_blocks(model, vector, SteerSpec(layers=[2], operator="ablate", sites="everywhere"))
        == 0
    )
    prompts, _, coefficients = _rows()
    seen, observing = _batch_sizes_seen(model)
    with observing:
        next_token_logprobs(
            model,
            tokenizer,
            prompts,
            [[1]] * 9,
            coefficients,
            vector=vector,
            spec=SteerSpec(layers="all"),
        )
    assert seen[0] == [9]
    seen, observing = _batch_sizes_seen(model)
    with observing:  # unsteered rows are not shared either
        next_token_logprobs(model, tokenizer, prompts, [[1]] * 9, [0.0] * 9)
    assert seen[0] == [9]


def test_an_error_inside_a_shared_pass_leaves_nothing_patched(llama):
    model, tokenizer = llama
    vector = random_vector(model)
    prompts, _, coefficients = _rows()
    spec = SteerSpec(layers=[2])
    failing = hooked(inputs=[(find_layers(model).blocks[3], lambda a, k: 1 / 0)])
    with pytest.raises(ZeroDivisionError), failing:
        next_token_logprobs(
            model, tokenizer, prompts, [[1]] * 9, coefficients, vector=vector, spec=spec
        )
    assert hook_count(model) == 0


@pytest.mark.parametrize(
    ("keys", "batch_size"),
    [
        (["a", "b", "c"] * 3, 9),
        (["a", "b", "c"] * 3, 4),
        (["a", "b", "c"] * 3, 2),
        (["a"] * 7 + ["b", "c"], 3),
        (list("abcdefg"), 3),
        ([], 4),
    ],
)
def test_plan_covers_every_row_once_within_the_batch_size(keys, batch_size):
    plan = plan_chunks(keys, batch_size, share=True)
    rows = sorted(r for chunk in plan for r in chunk.rows)
    assert rows == list(range(len(keys)))
    for chunk in plan:
        assert len(chunk.rows) == len(chunk.sources) * chunk.repeats
        assert len(chunk.rows) <= max(batch_size, chunk.repeats)
        for j, source in enumerate(chunk.sources):
            group = chunk.rows[j * chunk.repeats : (j + 1) * chunk.repeats]
            assert {keys[r] for r in group} == {keys[source]}
    assert plan == plan_chunks(keys, batch_size, share=True)  # deterministic
    unshared = plan_chunks(keys, batch_size, share=False)
    assert all(chunk.repeats == 1 for chunk in unshared)
    assert [r for chunk in unshared for r in chunk.rows] == list(range(len(keys)))
