"""Recording activations: agreement with transformers' hidden states, batching, early stop."""

from __future__ import annotations

import pytest
import torch

from steerlab.errors import DataError, SpecError
from steerlab.hooks import hook_count, hooked
from steerlab.record import TextExample, record, record_tokens

TEXTS = [
    "I am happy today, the weather is lovely",
    "Paris",
    "What is the capital of France? Paris is the capital of France.",
    "Tell me about your day.",
    "The quick brown fox",
]


def hidden_states(model, tokenizer, text: str) -> tuple[torch.Tensor, ...]:
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**enc, output_hidden_states=True).hidden_states


def test_last_token_matches_hidden_states(tiny):
    model, tokenizer = tiny
    n_layers = model.config.get_text_config().num_hidden_layers
    # The last entry of hidden_states has the final norm applied in some models; skip it.
    layers = list(range(n_layers - 1))
    recorded = record(model, tokenizer, TEXTS, layers, "last", batch_size=2)
    for i, text in enumerate(TEXTS):
        states = hidden_states(model, tokenizer, text)
        for layer in layers:
            assert torch.allclose(recorded[layer][i], states[layer + 1][0, -1], atol=1e-5)


def test_mean_over_span_matches_manual_mean(tiny):
    model, tokenizer = tiny
    prompt, reply = "What is the capital of France?", " Paris is the capital."
    example = TextExample(prompt + reply, span_start=len(prompt))
    recorded = record(model, tokenizer, [example], [0], "mean")
    states = hidden_states(model, tokenizer, prompt + reply)[1][0]
    enc = tokenizer(prompt + reply, return_offsets_mapping=True)
    in_span = torch.tensor([end > len(prompt) for _, end in enc["offset_mapping"]])
    assert 0 < int(in_span.sum()) < len(in_span)
    assert torch.allclose(recorded[0][0], states[in_span].mean(0), atol=1e-5)


@pytest.mark.parametrize("position", ["last", "mean"])
def test_batch_one_equals_batch_n(tiny, position):
    model, tokenizer = tiny
    examples = [TextExample(t, span_start=len(t) // 2) for t in TEXTS]
    one = record(model, tokenizer, examples, "all", position, batch_size=1)
    many = record(model, tokenizer, examples, "all", position, batch_size=len(TEXTS))
    for layer in one:
        assert one[layer].shape == (len(TEXTS), model.config.get_text_config().hidden_size)
        assert torch.allclose(one[layer], many[layer], atol=1e-5)


def test_record_tokens_keeps_only_real_tokens(llama):
    model, tokenizer = llama
    tokens = record_tokens(model, tokenizer, TEXTS, [1, 2], batch_size=3)
    for i, text in enumerate(TEXTS):
        n = len(tokenizer(text)["input_ids"])
        assert tokens[1][i].shape == (n, 48)
        assert torch.allclose(tokens[2][i], hidden_states(model, tokenizer, text)[3][0], atol=1e-5)


def test_forward_stops_after_the_deepest_layer(llama):
    model, tokenizer = llama
    calls = {"head": 0, "block3": 0}

    def count(name):
        def fn(hidden):
            calls[name] += 1

        return fn

    observers = [(model.lm_head, count("head")), (model.model.layers[3], count("block3"))]
    with hooked(outputs=observers):
        record(model, tokenizer, TEXTS, [0, 2], batch_size=2)
        assert calls == {"head": 0, "block3": 0}
        record(model, tokenizer, TEXTS, "all", batch_size=2)
        assert calls == {"head": 0, "block3": 3}  # 3 batches, each stopped before the head
    assert hook_count(model) == 0


def test_one_forward_pass_per_batch(llama):
    model, tokenizer = llama
    passes = []
    with hooked(inputs=[(model.model, lambda args, kwargs: passes.append(1))]):
        record(model, tokenizer, TEXTS, "all", batch_size=2)
    assert len(passes) == 3


def test_errors(llama):
    model, tokenizer = llama
    with pytest.raises(DataError):
        record(model, tokenizer, [], [0])
    with pytest.raises(SpecError, match="position"):
        record(model, tokenizer, TEXTS, [0], "middle")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="batch size"):
        record(model, tokenizer, TEXTS, [0], batch_size=0)
    assert hook_count(model) == 0


def test_collate_tokens_right_pads_like_record(llama):
    _, tokenizer = llama
    from steerlab.record import _collate, collate_tokens, tokenize_examples

    assert _collate is collate_tokens  # the old private name stays for internal callers
    rows = tokenize_examples(tokenizer, [TextExample(t) for t in TEXTS[:3]], None)
    batch = collate_tokens(rows, pad_id=-7)
    lengths = [len(ids) for ids, _ in rows]
    assert batch.input_ids.shape == (3, max(lengths))
    assert batch.lengths.tolist() == lengths
    for i, (ids, span) in enumerate(rows):
        n = len(ids)
        assert batch.input_ids[i, :n].tolist() == ids
        assert batch.attention_mask[i].tolist() == [1] * n + [0] * (max(lengths) - n)
        assert (batch.input_ids[i, n:] == -7).all()
        assert batch.span_mask[i, :n].tolist() == [float(x) for x in span]
