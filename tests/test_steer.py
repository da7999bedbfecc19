"""Exact properties of steering on tiny random models of several architectures."""

from __future__ import annotations

import copy

import pytest
import torch

import steerlab as sl
from conftest import make_model
from steerlab.errors import LayerError, ModelMismatchError, SpecError, VectorError
from steerlab.hooks import hook_count
from steerlab.models import model_identity
from steerlab.record import record_tokens
from steerlab.vector import SteeringVector, VectorMetadata

PROMPTS = ["I am happy today", "What is the capital of France? Paris", "Tell me"]


def random_vector(model, seed: int = 1, norms: bool = True) -> SteeringVector:
    identity = model_identity(model)
    generator = torch.Generator().manual_seed(seed)
    directions = {
        layer: torch.randn(identity.hidden_size, generator=generator)
        for layer in range(identity.num_layers)
    }
    activation_norms = {layer: 2.0 + layer for layer in directions} if norms else None
    return SteeringVector(directions, VectorMetadata.for_model(identity, "test"), activation_norms)


def logits(
    model, tokenizer, texts, padding_side: str = "left"
) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer.padding_side = padding_side
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    # Explicit positions so left padding does not shift them.
    positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(**enc, position_ids=positions).logits
    return out, enc["attention_mask"]


def test_coefficient_zero_changes_nothing(tiny):
    model, tokenizer = tiny
    vector = random_vector(model)
    base, _ = logits(model, tokenizer, PROMPTS)
    for operator in ("add", "ablate"):
        with sl.steer(model, vector, 0.0, operator=operator):
            steered, _ = logits(model, tokenizer, PROMPTS)
        assert torch.equal(base, steered), operator
    with sl.steer(model, vector, [0.0, 0.0, 0.0], normalize=True, scale_by_norm=True):
        steered, _ = logits(model, tokenizer, PROMPTS)
    assert torch.equal(base, steered)


def test_nonzero_coefficient_changes_logits(tiny):
    model, tokenizer = tiny
    base, _ = logits(model, tokenizer, PROMPTS)
    with sl.steer(model, random_vector(model), 3.0, layers=[0]):
        steered, _ = logits(model, tokenizer, PROMPTS)
    assert not torch.allclose(base, steered)


@pytest.mark.parametrize("normalize,scale_by_norm", [(False, False), (True, False), (True, True)])
def test_patched_activation_is_original_plus_c_v(tiny, normalize, scale_by_norm):
    model, tokenizer = tiny
    vector = random_vector(model)
    layer, c = 1, 2.5
    original = record_tokens(model, tokenizer, PROMPTS, [layer])[layer]
    with sl.steer(
        model, vector, c, layers=[layer], normalize=normalize, scale_by_norm=scale_by_norm
    ):
        patched = record_tokens(model, tokenizer, PROMPTS, [layer])[layer]
    v = vector[layer]
    if normalize:
        v = v / v.norm()
    scale = vector.activation_norms[layer] if scale_by_norm else 1.0
    for before, after in zip(original, patched, strict=True):
        assert torch.equal(after, before + (torch.tensor(c, dtype=torch.float32) * scale) * v)


def test_ablate_leaves_no_component_and_clamp_sets_it(tiny):
    model, tokenizer = tiny
    vector = random_vector(model)
    layer = 1
    unit = vector[layer] / vector[layer].norm()
    with sl.steer(model, vector, 1.0, layers=[layer], operator="ablate"):
        ablated = record_tokens(model, tokenizer, PROMPTS, [layer])[layer]
    for acts in ablated:
        assert (acts @ unit).abs().max() < 1e-4
    with sl.steer(model, vector, 3.0, layers=[layer], operator="clamp"):
        clamped = record_tokens(model, tokenizer, PROMPTS, [layer])[layer]
    for acts in clamped:
        assert torch.allclose(acts @ unit, torch.full((acts.shape[0],), 3.0), atol=1e-4)


def test_per_row_coefficients_equal_separate_runs(tiny):
    model, tokenizer = tiny
    vector = random_vector(model)
    coefficients = [-2.0, 0.0, 1.5, 4.0]
    prompt = PROMPTS[1]
    with sl.steer(model, vector, coefficients, layers="1-2"):
        batched, _ = logits(model, tokenizer, [prompt] * len(coefficients))
    for row, c in enumerate(coefficients):
        with sl.steer(model, vector, c, layers="1-2"):
            single, _ = logits(model, tokenizer, [prompt])
        assert torch.allclose(batched[row], single[0], atol=1e-5)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batch_one_equals_batch_n_with_padding(tiny, padding_side):
    model, tokenizer = tiny
    vector = random_vector(model)
    for positions in ("all", "generated"):
        with sl.steer(model, vector, 1.5, layers="all", positions=positions):
            batched, mask = logits(model, tokenizer, PROMPTS, padding_side)
            for row, prompt in enumerate(PROMPTS):
                single, _ = logits(model, tokenizer, [prompt], padding_side)
                real = batched[row][mask[row].bool()]
                assert torch.allclose(real, single[0], atol=1e-4), (positions, row)


def test_generated_positions_leave_prompt_logits_untouched(tiny):
    model, tokenizer = tiny
    vector = random_vector(model)
    base, _ = logits(model, tokenizer, PROMPTS[:1])
    with sl.steer(model, vector, 4.0, positions="generated"):
        steered, _ = logits(model, tokenizer, PROMPTS[:1])
    assert torch.equal(base[0, :-1], steered[0, :-1])
    assert not torch.allclose(base[0, -1], steered[0, -1])


def test_generated_positions_steer_first_generated_token_in_generate(tiny):
    model, tokenizer = tiny
    vector = random_vector(model)
    tokenizer.padding_side = "left"
    enc = tokenizer(PROMPTS[:2], return_tensors="pt", padding=True)
    settings = {"max_new_tokens": 3, "do_sample": False, "output_logits": True}
    settings |= {"return_dict_in_generate": True, "pad_token_id": tokenizer.pad_token_id}
    with torch.no_grad():
        base = model.generate(**enc, **settings)
        with sl.steer(model, vector, 4.0, positions="generated"):
            steered = model.generate(**enc, **settings)
    assert not torch.allclose(base.logits[0], steered.logits[0])


def test_prompt_positions_do_not_steer_generation_steps(tiny):
    model, tokenizer = tiny
    vector = random_vector(model)
    enc = tokenizer(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad():
        with sl.steer(model, vector, 4.0, positions="prompt"):
            prefill = model(**enc, use_cache=True)
        next_token = prefill.logits[:, -1:].argmax(-1)
        mask = torch.ones(1, enc["input_ids"].shape[1] + 1, dtype=torch.long)
        step = {"input_ids": next_token, "attention_mask": mask}
        plain = model(**step, past_key_values=copy.deepcopy(prefill.past_key_values)).logits
        with sl.steer(model, vector, 4.0, positions="prompt"):
            prompt_only = model(**step, past_key_values=copy.deepcopy(prefill.past_key_values))
        with sl.steer(model, vector, 4.0, positions="generated"):
            generated = model(**step, past_key_values=copy.deepcopy(prefill.past_key_values))
    assert torch.equal(plain, prompt_only.logits)
    assert not torch.allclose(plain, generated.logits)


def test_batched_generate_equals_sequential(llama):
    model, tokenizer = llama
    vector = random_vector(model)
    coefficients = [-3.0, 0.0, 3.0]
    batched = sl.generate(model, tokenizer, PROMPTS[:2], vector, coefficients, max_new_tokens=5)
    for item in batched:
        (single,) = sl.generate(
            model, tokenizer, [item.prompt], vector, [item.coefficient], max_new_tokens=5
        )
        assert single.text == item.text
    assert [g.coefficient for g in batched] == coefficients * 2


def test_steering_is_undone_on_exit(tiny):
    model, tokenizer = tiny
    base, _ = logits(model, tokenizer, PROMPTS)
    with sl.steer(model, random_vector(model), 5.0):
        assert hook_count(model) > 0
    assert hook_count(model) == 0
    after, _ = logits(model, tokenizer, PROMPTS)
    assert torch.equal(base, after)


def test_no_hook_survives_an_exception(llama):
    model, tokenizer = llama
    vector = random_vector(model)
    with pytest.raises(RuntimeError, match="boom"), sl.steer(model, vector, 1.0):
        raise RuntimeError("boom")
    assert hook_count(model) == 0
    # An error raised inside a hook during the forward pass: 2 coefficients for 3 rows.
    with pytest.raises(SpecError, match="per-row"), sl.steer(model, vector, [1.0, 2.0]):
        logits(model, tokenizer, PROMPTS)
    assert hook_count(model) == 0


def test_no_hook_survives_a_failed_installation(llama):
    from steerlab.hooks import hooked

    model, _ = llama
    good = (model.model.layers[0], lambda h: None)
    with pytest.raises(AttributeError), hooked(outputs=[good, (object(), lambda h: None)]):
        pass
    assert hook_count(model) == 0


def test_layer_out_of_range(llama):
    model, _ = llama
    with (
        pytest.raises(LayerError, match="out of range"),
        sl.steer(model, random_vector(model), 1.0, layers=[7]),
    ):
        pass


def test_vector_from_other_model_is_refused(llama):
    model, _ = llama
    other, _ = make_model("llama", layers=4, hidden=32)
    with (
        pytest.raises(ModelMismatchError, match="hidden size"),
        sl.steer(model, random_vector(other), 1.0),
    ):
        pass
    gpt2, _ = make_model("gpt2", layers=4, hidden=48)
    with pytest.raises(ModelMismatchError, match="gpt2"), sl.steer(model, random_vector(gpt2), 1.0):
        pass


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, float("-inf")], []])
def test_non_finite_or_empty_coefficient(llama, bad):
    model, _ = llama
    with pytest.raises(SpecError), sl.steer(model, random_vector(model), bad):
        pass


def test_bad_operator_positions_and_missing_norms(llama):
    model, _ = llama
    vector = random_vector(model, norms=False)
    with pytest.raises(SpecError, match="operator"):
        sl.steer(model, vector, 1.0, operator="multiply")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="positions"):
        sl.steer(model, vector, 1.0, positions="middle")  # type: ignore[arg-type]
    with (
        pytest.raises(VectorError, match="activation norm"),
        sl.steer(model, vector, 1.0, scale_by_norm=True),
    ):
        pass
    partial = vector.select([0, 1])
    with (
        pytest.raises(VectorError, match="no direction for layer 3"),
        sl.steer(model, partial, 1.0, layers=[3]),
    ):
        pass


def test_numpy_coefficients_are_per_row():
    import numpy as np

    from steerlab.steer import SteerSpec

    assert SteerSpec(coefficient=np.array([1.0, 2.0, 3.0])).coefficient == (1.0, 2.0, 3.0)
    assert SteerSpec(coefficient=2).coefficient == 2.0


@pytest.mark.parametrize("field", ["normalize", "scale_by_norm"])
def test_spec_booleans_are_booleans(field: str) -> None:
    # 1 and "yes" are not flags: a config typo must fail at construction, not steer oddly.
    with pytest.raises(SpecError, match=f"{field} must be True or False, got 1"):
        sl.SteerSpec(**{field: 1})
