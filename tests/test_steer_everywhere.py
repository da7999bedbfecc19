"""``steer(..., operator="ablate", sites="everywhere")``: one direction removed from every
residual write (embeddings and every sub-layer's output), checked against the residual stream
itself."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "export"))
from fold_models import ABLATE_ARCHS, batch, make_fold_model, random_vector

from steerlab.errors import LayerError, SpecError
from steerlab.hooks import hook_count
from steerlab.layers import find_residual_modules
from steerlab.steer import SteerSpec, steer


def _residual_components(model, tokenizer, unit: torch.Tensor) -> torch.Tensor:
    """|h·û| at every real token of the embedding output and every block output but the
    last (transformers normalises the last hidden state)."""
    inputs = batch(tokenizer)
    hidden = model(**inputs, output_hidden_states=True).hidden_states[:-1]
    mask = inputs["attention_mask"].bool()
    return torch.stack([(h[mask] @ unit).abs().max() for h in hidden])


@pytest.mark.parametrize("arch", ABLATE_ARCHS)
def test_everywhere_leaves_no_component_in_the_residual_stream(arch: str) -> None:
    model, tokenizer = make_fold_model(arch)
    vector = random_vector(model)
    unit = vector[1] / vector[1].norm()
    assert _residual_components(model, tokenizer, unit).max() > 1e-2  # something to remove
    with steer(model, vector, operator="ablate", layers=1, sites="everywhere"):
        components = _residual_components(model, tokenizer, unit)
    assert components.max() < 1e-5


def test_everywhere_is_stronger_than_block_output_ablation() -> None:
    model, tokenizer = make_fold_model("llama")
    vector = random_vector(model)
    unit = vector[1] / vector[1].norm()
    with steer(model, vector, operator="ablate", layers="all"):
        blocks = _residual_components(model, tokenizer, unit)
    # Block outputs lose the component, but the embeddings still carry it.
    assert blocks[0] > 1e-2 and blocks[2] < 1e-5
    inputs = batch(tokenizer)
    with steer(model, vector, operator="ablate", layers=1):
        one_block = model(**inputs).logits
    with steer(model, vector, operator="ablate", layers=1, sites="everywhere"):
        everywhere = model(**inputs).logits
    assert not torch.allclose(one_block, everywhere, atol=1e-3)


def test_partial_coefficient_scales_the_component() -> None:
    model, tokenizer = make_fold_model("qwen2")
    vector = random_vector(model)
    unit = vector[2] / vector[2].norm()
    inputs = batch(tokenizer)
    mask = inputs["attention_mask"].bool()
    embeds = model.get_input_embeddings()(inputs["input_ids"])[mask] @ unit
    with steer(model, vector, 0.25, operator="ablate", layers=2, sites="everywhere"):
        first = model(**inputs, output_hidden_states=True).hidden_states[0][mask] @ unit
    torch.testing.assert_close(first, 0.75 * embeds, atol=1e-5, rtol=1e-5)


def test_hooks_sit_on_every_writer_and_leave_on_exit_and_on_error() -> None:
    model, _tokenizer = make_fold_model("gpt2")
    vector = random_vector(model)
    writes = find_residual_modules(model)
    assert [name for name, _ in writes.embeddings] == ["transformer.wte", "transformer.wpe"]
    assert len(writes.sublayers) == 2 * 3
    with steer(model, vector, operator="ablate", layers=0, sites="everywhere"):
        # one hook per embedding and sub-layer, plus the pass observer on the stack
        assert hook_count(model) == 2 + 6 + 1
    assert hook_count(model) == 0
    with (
        pytest.raises(RuntimeError, match="boom"),
        steer(model, vector, operator="ablate", layers=0, sites="everywhere"),
    ):
        raise RuntimeError("boom")
    assert hook_count(model) == 0


def test_spec_validates_sites() -> None:
    assert SteerSpec().sites == "blocks"
    assert SteerSpec(operator="ablate", sites="everywhere").sites == "everywhere"
    with pytest.raises(SpecError, match="sites"):
        SteerSpec(operator="ablate", sites="somewhere")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="operator='ablate'"):
        SteerSpec(operator="add", sites="everywhere")
    with pytest.raises(SpecError, match="operator='ablate'"):
        SteerSpec(operator="clamp", sites="everywhere")


def test_everywhere_needs_one_layer_and_a_known_architecture() -> None:
    model, _tokenizer = make_fold_model("llama")
    vector = random_vector(model)
    for layers in ("1-2", None):  # None: all three of the vector's layers
        with (
            pytest.raises(SpecError, match="one layer"),
            steer(model, vector, operator="ablate", layers=layers, sites="everywhere"),
        ):
            pass
    gemma2, _ = make_fold_model("gemma2")
    with (
        pytest.raises(LayerError, match="post-norms"),
        steer(gemma2, random_vector(gemma2), operator="ablate", layers=1, sites="everywhere"),
    ):
        pass
    assert hook_count(model) == 0 and hook_count(gemma2) == 0


def test_prompt_positions_leave_generated_tokens_alone() -> None:
    model, tokenizer = make_fold_model("llama")
    vector = random_vector(model)
    inputs = tokenizer(["The quick brown fox"], return_tensors="pt")
    settings = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    with steer(model, vector, operator="ablate", layers=1, sites="everywhere", positions="all"):
        everywhere = model(**inputs).logits
    with steer(model, vector, operator="ablate", layers=1, sites="everywhere", positions="prompt"):
        prompt_only = model(**inputs).logits
        generated = model.generate(**inputs, **settings)
    torch.testing.assert_close(prompt_only, everywhere)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 6
