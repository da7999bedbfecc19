"""Each assumption steerlab makes about transformers (listed in steerlab.upstream), tested.

When an upstream release breaks one of them, the failing test names the assumption.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Cache, DynamicCache, Trainer

from conftest import make_model
from steerlab.hooks import hidden_of, hooked
from steerlab.layers import find_layers
from steerlab.models import convert_gguf, model_identity
from steerlab.upstream import cache_keyword, read_call, returned_cache
from tiny_gguf import write_tiny_gguf

PROMPTS = ["I am happy today", "Tell me"]


def _stack(model):
    path = find_layers(model).path
    return model.get_submodule(path.rsplit(".", 1)[0])


def test_forward_call_cache_is_found_by_type_with_its_length(tiny):
    """generate passes the decoder stack a Cache whose length is the tokens already fed."""
    model, tokenizer = tiny
    tokenizer.padding_side = "left"
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    stack = _stack(model)
    calls = []
    observe = [(stack, lambda a, k: calls.append(read_call(a, k, stack.forward)))]
    with hooked(inputs=observe), torch.no_grad():
        model.generate(
            **enc, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    width = enc["input_ids"].shape[1]
    assert [c.cached for c in calls] == [0, width, width + 1]
    assert all(c.has_cache for c in calls)
    # The padding mask reaches the stack as (batch, tokens so far) on every call.
    assert [tuple(c.attention_mask.shape) for c in calls] == [(2, width + i) for i in range(3)]
    assert torch.equal(calls[0].input_ids, enc["input_ids"])


def test_forward_call_without_cache(tiny):
    model, tokenizer = tiny
    enc = tokenizer(PROMPTS[:1], return_tensors="pt")
    stack = _stack(model)
    calls = []
    observe = [(stack, lambda a, k: calls.append(read_call(a, k, stack.forward)))]
    with hooked(inputs=observe), torch.no_grad():
        model(**enc, use_cache=False)
    assert len(calls) == 1 and not calls[0].has_cache and calls[0].cached == 0


def test_read_call_finds_the_cache_under_any_name_and_binds_positions():
    model, tokenizer = make_model("llama")
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(**tokenizer(PROMPTS[:1], return_tensors="pt"), past_key_values=cache)
    length = cache.get_seq_length()
    assert isinstance(cache, Cache) and length > 0
    ids = torch.ones(1, 1, dtype=torch.long)
    mask = torch.ones(1, length + 1, dtype=torch.long)
    for kwargs in ({"cache": cache}, {"past_key_values": cache}, {"some_future_name": cache}):
        info = read_call((), {"input_ids": ids, "attention_mask": mask, **kwargs})
        assert info.cached == length and info.has_cache
        assert info.attention_mask is mask and info.input_ids is ids
    stack = _stack(model)
    info = read_call((ids, mask), {}, stack.forward)  # positional, bound by the signature
    assert info.input_ids is ids and info.attention_mask is mask
    four_d = torch.ones(1, 1, 1, length + 1)
    assert read_call((), {"attention_mask": four_d}).attention_mask is None


def test_decoder_block_outputs_lead_with_hidden_states(tiny):
    model, tokenizer = tiny
    enc = tokenizer(PROMPTS[:1], return_tensors="pt")
    seen = []
    blocks = find_layers(model).blocks
    hooks = [(block, lambda h: seen.append(h.shape)) for block in blocks]
    with hooked(outputs=hooks), torch.no_grad():
        model(**enc)
    width = (1, enc["input_ids"].shape[1], model_identity(model).hidden_size)
    assert seen == [torch.Size(width)] * len(blocks)
    assert hidden_of(torch.zeros(1, 2, 3)).shape == (1, 2, 3)


def test_decoder_block_list_and_config_fields(tiny):
    model, _ = tiny
    identity = model_identity(model)
    layer_map = find_layers(model)
    assert len(layer_map) == identity.num_layers == 3
    assert identity.hidden_size == model.get_input_embeddings().weight.shape[1]
    assert identity.model_type == model.config.model_type


def test_model_forward_and_generate_take_the_documented_arguments(tiny):
    model, tokenizer = tiny
    parameters = inspect.signature(model.forward).parameters
    assert "input_ids" in parameters and "attention_mask" in parameters
    enc = tokenizer(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad():
        out = model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], use_cache=False
        )
    assert out.logits.shape[:2] == enc["input_ids"].shape


def test_incremental_decoding_takes_the_cache_by_its_signature_name(tiny):
    """The server decodes step by step: the cache goes in under the name the forward's
    signature has, comes back found by type, and loses rows by batch_select_indices; the
    steps give the logits one full forward gives."""
    model, tokenizer = tiny
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    keyword = cache_keyword(model)
    assert keyword in inspect.signature(model.forward).parameters
    with torch.no_grad():
        first = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        cache = returned_cache(first)
        assert isinstance(cache, Cache) and cache.get_seq_length() == ids.shape[1]
        token = first.logits[:, -1:].argmax(-1)
        assert int(mask[0].min()) == 1  # the longer prompt, unpadded
        cache.batch_select_indices(torch.tensor([0]))  # the padded row leaves
        step_mask = torch.cat([mask[:1], torch.ones((1, 1), dtype=mask.dtype)], dim=-1)
        step = model(
            input_ids=token[:1],
            attention_mask=step_mask,
            position_ids=positions[:1, -1:] + 1,
            use_cache=True,
            **{keyword: cache},
        )
        whole = model(input_ids=torch.cat([ids[:1], token[:1]], dim=-1), use_cache=False)
    torch.testing.assert_close(step.logits[0, -1], whole.logits[0, -1], atol=1e-4, rtol=1e-4)


def test_trainer_compute_loss_signature():
    parameters = inspect.signature(Trainer.compute_loss).parameters
    assert list(parameters)[:5] == [
        "self",
        "model",
        "inputs",
        "return_outputs",
        "num_items_in_batch",
    ]


def test_gguf_loads_and_converts_to_a_plain_checkpoint(tmp_path: Path):
    """from_pretrained(gguf_file=) de-quantises; the converted copy loads as a plain model."""
    model, tokenizer = make_model("llama", layers=2, hidden=32)
    gguf_file = write_tiny_gguf(model, tokenizer, tmp_path / "tiny.gguf")
    folder = convert_gguf(gguf_file, tmp_path / "converted")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    enc = tokenizer(PROMPTS[:1], return_tensors="pt")
    assert reloaded_tokenizer(PROMPTS[0])["input_ids"] == enc["input_ids"][0].tolist()
    with torch.no_grad():
        original = model(**enc).logits
        converted = loaded(**enc).logits
    assert torch.allclose(original, converted, atol=1e-5)
    assert not list((tmp_path).glob(".converted.*"))  # no temporary folder left
