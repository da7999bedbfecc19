"""Model specs of an evaluation: EvalModel checks, command-line parsing, entries of a run."""

from __future__ import annotations

import pytest
from suite_helpers import vector_for

from conftest import make_model
from steerlab.errors import SpecError, VectorError
from steerlab.evaluate import EvalModel, parse_models
from steerlab.evaluate.model_specs import model_entries, unique_label


@pytest.fixture
def small():
    return make_model("llama", layers=3, hidden=32)


def test_parse_models_labels(tmp_path):
    models = parse_models("default, runs/honest ,other/honest,runs/token_only/")
    assert [m.label for m in models] == ["untuned", "honest", "honest-2", "token_only"]
    assert [m.source for m in models] == [
        "default",
        "runs/honest",
        "other/honest",
        "runs/token_only/",
    ]
    models = parse_models(["base=default", "org/Model-1"])
    assert [(m.label, m.source) for m in models] == [
        ("base", "default"),
        ("Model-1", "org/Model-1"),
    ]
    with pytest.raises(SpecError, match="given twice"):
        parse_models("a=default,a=runs/x")


def test_parse_models_steered(small, tmp_path):
    model, _ = small
    folder = tmp_path / "odd:dir"
    folder.mkdir()
    path = vector_for(model).save(folder / "v.safetensors")
    models = parse_models(
        "default,runs/honest",
        [f"untuned:{path}:4", f"mine=runs/honest:{path}:-2.5", f"default:{path}:0.5"],
    )
    steered = models[2:]
    assert [m.label for m in steered] == ["untuned+steer(4)", "mine", "untuned+steer(0.5)"]
    assert [m.source for m in steered] == ["default", "runs/honest", "default"]
    assert [m.coefficient for m in steered] == [4.0, -2.5, 0.5]
    assert all(m.vector is not None and m.vector_path == str(path) for m in steered)
    odd = parse_models("default", [f"odd:model:{path}:1"])[1]
    assert (odd.source, odd.vector_path, odd.label) == (
        "odd:model",
        str(path),
        "odd:model+steer(1)",
    )
    with pytest.raises(SpecError, match="'abc' is not a number"):
        parse_models("default", [f"untuned:{path}:abc"])
    with pytest.raises(SpecError, match="MODEL:VECTOR:COEF"):
        parse_models("default", ["untuned:3"])
    with pytest.raises(VectorError, match=r"missing\.safetensors"):
        parse_models("default", [f"untuned:{tmp_path / 'missing.safetensors'}:1"])


def test_eval_model_validation(small):
    model, _ = small
    with pytest.raises(SpecError, match="source or an in-memory model"):
        EvalModel("x")
    with pytest.raises(SpecError, match="tokenizer"):
        EvalModel("x", model=model)
    with pytest.raises(SpecError, match="newline"):
        EvalModel("a\nb", source="default")
    with pytest.raises(SpecError, match="non-empty"):
        EvalModel("", source="default")
    with pytest.raises(SpecError, match="needs a vector"):
        EvalModel("x", source="default", coefficient=2.0)
    with pytest.raises(SpecError, match="coefficient must be a finite number, got inf"):
        EvalModel("x", source="default", vector=vector_for(model), coefficient=float("inf"))
    with pytest.raises(SpecError, match="coefficient must be a finite number, got True"):
        EvalModel("x", source="default", vector=vector_for(model), coefficient=True)
    with pytest.raises(SpecError, match=r"model 'x': -1 is not a layer index >= 0"):
        EvalModel("x", source="default", layers=(0, -1))
    assert EvalModel("x", source="default", layers=2).layers == (2,)


def test_model_entries_parse_sources_and_refuse_repeats(small):
    model, tokenizer = small
    memory = EvalModel("mem", model=model, tokenizer=tokenizer)
    entries = model_entries(["default", memory, "b=runs/x"])
    assert [e.label for e in entries] == ["untuned", "mem", "b"]
    assert [e.label for e in model_entries("default,runs/y")] == ["untuned", "y"]
    with pytest.raises(SpecError, match="used twice"):
        model_entries([memory, memory])
    with pytest.raises(SpecError, match="neither an EvalModel nor a source"):
        model_entries([3])  # type: ignore[list-item]
    with pytest.raises(SpecError, match="no models"):
        model_entries([])
    assert unique_label("a", {"a", "a-2"}) == "a-3"
