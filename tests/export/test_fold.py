"""steerlab.fold: steering folded into the weights equals hooked steering (logits within 1e-5
in float32) on every supported architecture, tied and untied; the input model is untouched;
what cannot be folded is refused with one line."""

from __future__ import annotations

import copy

import pytest
import torch
from fold_models import (
    ABLATE_ARCHS,
    ABLATE_ONLY_ARCHS,
    ADD_ARCHS,
    POST_NORM_ARCHS,
    TIED_ARCHS,
    VARIANTS,
    batch,
    make_fold_model,
    random_vector,
)

import steerlab.export.fold as fold_module
from steerlab.errors import LayerError, SpecError, SteerlabError
from steerlab.export.fold import fold, fold_record
from steerlab.hooks import hook_count
from steerlab.steer import SteerSpec, steer

ADD = {"coefficient": 0.3, "layers": "1-2", "scale": "norm"}
CASES = [(arch, False) for arch in ABLATE_ARCHS] + [(arch, True) for arch in TIED_ARCHS]


def _logits(model, inputs) -> torch.Tensor:
    return model(**inputs).logits[inputs["attention_mask"].bool()]


def _state(model) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("arch,tied", [case for case in CASES if case[0] in ADD_ARCHS])
def test_add_equals_hooks(arch: str, tied: bool) -> None:
    model, tokenizer = make_fold_model(arch, tied=tied)
    vector, inputs = random_vector(model), batch(tokenizer)
    folded = fold(model, vector, **ADD)
    with steer(model, vector, operator="add", **ADD):
        hooked = _logits(model, inputs)
    assert not torch.allclose(hooked, _logits(model, inputs), atol=1e-2)
    torch.testing.assert_close(_logits(folded, inputs), hooked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,tied", CASES)
def test_ablate_equals_hooks_everywhere(arch: str, tied: bool) -> None:
    model, tokenizer = make_fold_model(arch, tied=tied)
    vector, inputs = random_vector(model), batch(tokenizer)
    folded = fold(model, vector, operator="ablate", layers=1)
    with steer(model, vector, operator="ablate", layers=1, sites="everywhere"):
        hooked = _logits(model, inputs)
    assert not torch.allclose(hooked, _logits(model, inputs), atol=1e-2)
    torch.testing.assert_close(_logits(folded, inputs), hooked, atol=1e-5, rtol=1e-5)
    assert fold_record(folded)["untied_embeddings"] is tied
    if tied:  # the output head keeps the original rows
        torch.testing.assert_close(
            folded.get_output_embeddings().weight, model.get_input_embeddings().weight
        )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_other_layouts_of_an_architecture(variant: str) -> None:
    arch, overrides = VARIANTS[variant]
    model, tokenizer = make_fold_model(arch, **overrides)
    vector, inputs = random_vector(model), batch(tokenizer)
    operators = ["ablate"] + (["add"] if arch in ADD_ARCHS else [])
    for operator in operators:
        kwargs = ADD if operator == "add" else {"layers": 1}
        folded = fold(model, vector, operator=operator, **kwargs)
        sites = {"sites": "everywhere"} if operator == "ablate" else {}
        with steer(model, vector, operator=operator, **kwargs, **sites):
            hooked = _logits(model, inputs)
        torch.testing.assert_close(_logits(folded, inputs), hooked, atol=1e-5, rtol=1e-5)


def test_a_tying_bug_would_show(monkeypatch: pytest.MonkeyPatch) -> None:
    # With random norm gains, an output head sharing the orthogonalised embeddings is wrong.
    model, tokenizer = make_fold_model("llama", tied=True)
    vector, inputs = random_vector(model), batch(tokenizer)
    monkeypatch.setattr(fold_module, "untie_embeddings", lambda _model: False)
    folded = fold(model, vector, operator="ablate", layers=1)
    with steer(model, vector, operator="ablate", layers=1, sites="everywhere"):
        hooked = _logits(model, inputs)
    assert (_logits(folded, inputs) - hooked).abs().max() > 1e-3


def test_partial_ablation_equals_hooks() -> None:
    model, tokenizer = make_fold_model("mixtral")
    vector, inputs = random_vector(model), batch(tokenizer)
    folded = fold(model, vector, SteerSpec(0.5, layers=2, operator="ablate"))
    with steer(model, vector, 0.5, operator="ablate", layers=2, sites="everywhere"):
        hooked = _logits(model, inputs)
    torch.testing.assert_close(_logits(folded, inputs), hooked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scale", ["vector", "unit"])
def test_add_scales(scale: str) -> None:
    model, tokenizer = make_fold_model("gpt2")
    vector, inputs = random_vector(model), batch(tokenizer)
    folded = fold(model, vector, SteerSpec(-0.2, layers=(0, 2), scale=scale))
    with steer(model, vector, -0.2, layers=[0, 2], scale=scale):  # type: ignore[arg-type]
        hooked = _logits(model, inputs)
    torch.testing.assert_close(_logits(folded, inputs), hooked, atol=1e-5, rtol=1e-5)


def test_coefficient_zero_add_equals_the_original() -> None:
    model, tokenizer = make_fold_model("llama", tied=True)
    vector, inputs = random_vector(model), batch(tokenizer)
    folded = fold(model, vector, coefficient=0.0, layers="all")
    torch.testing.assert_close(_logits(folded, inputs), _logits(model, inputs))
    record = fold_record(folded)
    assert record["bias_switch"] == {"attribute": "mlp_bias", "zero_biases": 9}
    assert folded.config.mlp_bias is True


@pytest.mark.parametrize("operator", ["add", "ablate"])
def test_the_input_model_is_untouched(operator: str) -> None:
    model, _tokenizer = make_fold_model("llama", tied=True)
    before, config = _state(model), model.config.to_dict()
    kwargs = ADD if operator == "add" else {"layers": 1}
    folded = fold(model, random_vector(model), operator=operator, **kwargs)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert model.config.to_dict() == config
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert folded is not model and hook_count(model) == hook_count(folded) == 0


def test_an_error_midway_leaves_the_input_model_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = make_fold_model("qwen2", tied=True)
    before = _state(model)

    def broken(writer, unit, coefficient=1.0):
        raise RuntimeError("boom")

    monkeypatch.setattr(fold_module, "project_out", broken)
    with pytest.raises(RuntimeError, match="boom"):
        fold(model, random_vector(model), operator="ablate", layers=1)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.config.tie_word_embeddings is True and hook_count(model) == 0


def test_record_says_what_was_folded() -> None:
    model, _ = make_fold_model("gpt2")
    vector = random_vector(model)
    record = fold_record(fold(model, vector, **ADD))
    assert record["format"] == "steerlab.fold/1"
    assert (record["operator"], record["coefficient"], record["scale"]) == ("add", 0.3, "norm")
    assert record["layers"] == [1, 2] and record["positions"] == "all"
    assert record["activation_norms"] == {"1": 4.0, "2": 4.0}
    assert record["vector"]["sha256"] == vector.sha256()
    assert record["vector"]["metadata"]["method"] == "mean_diff"
    assert record["bias_module"] == "mlp.c_proj" and record["bias_switch"] is None
    assert {"library_version", "git_revision", "created"} <= set(record)
    ablated = fold_record(fold(model, vector, operator="ablate", layers=2))
    assert ablated["sites"] == "everywhere" and ablated["coefficient"] == 1.0
    assert "transformer.wpe" in ablated["orthogonalised"]


# -- refusals: one line, saying why ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"operator": "clamp", "coefficient": 1.0, "layers": 1}, "clamp .*no fixed weights"),
        ({"coefficient": 0.5, "layers": 1, "positions": "prompt"}, "positions='prompt'"),
        ({"coefficient": (0.5, 1.0), "layers": 1}, "per-row coefficients"),
        ({"operator": "ablate", "layers": "1-2"}, "one direction .* not 2 layers"),
        ({"operator": "ablate"}, "one direction .* not 3 layers"),
        ({"layers": 1}, "give the coefficient"),
    ],
)
def test_refusals(kwargs: dict, match: str) -> None:
    model, _ = make_fold_model("llama")
    vector = random_vector(model)
    with pytest.raises(SpecError, match=match) as caught:
        if "positions" in kwargs or isinstance(kwargs.get("coefficient"), tuple):
            fold(model, vector, SteerSpec(**kwargs))
        else:
            fold(model, vector, **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("arch", ABLATE_ONLY_ARCHS)
def test_add_is_refused_without_a_bias_switch(arch: str) -> None:
    model, _ = make_fold_model(arch)
    with pytest.raises(SpecError, match=f"{arch}: the MLP output projection has no bias"):
        fold(model, random_vector(model), **ADD)


@pytest.mark.parametrize("arch", POST_NORM_ARCHS)
@pytest.mark.parametrize("operator", ["add", "ablate"])
def test_post_norm_architectures_are_refused(arch: str, operator: str) -> None:
    model, _ = make_fold_model(arch)
    kwargs = ADD if operator == "add" else {"layers": 1}
    with pytest.raises(LayerError, match="post-norms"):
        fold(model, random_vector(model), operator=operator, **kwargs)


def test_unknown_architecture_is_refused() -> None:
    model, _ = make_fold_model("llama")
    model.config.model_type = "mystery"
    with pytest.raises(LayerError, match="does not know which modules of a mystery model"):
        fold(model, random_vector(model), operator="ablate", layers=1)


def test_spec_and_keywords_together_are_refused() -> None:
    model, _ = make_fold_model("llama")
    with pytest.raises(SpecError, match="not both"):
        fold(model, random_vector(model), SteerSpec(1.0), coefficient=2.0)


def test_models_inside_steer_or_wrapped_are_refused() -> None:
    model, _ = make_fold_model("llama")
    vector = random_vector(model)
    with steer(model, vector, 0.1, layers=1), pytest.raises(SpecError, match="hooks installed"):
        fold(model, vector, **ADD)
    wrapped = copy.copy(model)
    wrapped.peft_config = {}
    with pytest.raises(SpecError, match="PEFT-wrapped"):
        fold(wrapped, vector, **ADD)


def test_vector_of_another_model_is_refused() -> None:
    model, _ = make_fold_model("llama")
    other, _ = make_fold_model("gpt2")
    with pytest.raises(SteerlabError, match="gpt2"):
        fold(model, random_vector(other), **ADD)
