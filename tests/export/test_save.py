"""Folded checkpoints on disk: plain ``AutoModelForCausalLM.from_pretrained`` loads them and
generates, greedily with the KV cache, the tokens hooked steering generates; the folder
records the fold's provenance; a folder that would load wrong is refused and left nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fold_models import batch, make_fold_model, random_vector
from transformers import AutoModelForCausalLM

import steerlab.export.checkpoint as checkpoint_module
from steerlab.errors import SpecError
from steerlab.export.checkpoint import FOLD_FILE, check_reloads, save_folded
from steerlab.export.fold import fold, fold_record
from steerlab.provenance import sha256_of_file
from steerlab.steer import steer

CASES = [
    ("llama", True, "add"),
    ("llama", True, "ablate"),
    ("gpt2", False, "add"),
    ("falcon", False, "add"),
    ("qwen2", True, "ablate"),
    ("qwen2_moe", False, "ablate"),
]


def _hooked_kwargs(operator: str) -> dict:
    if operator == "add":
        return {"coefficient": 0.3, "layers": "1-2", "scale": "norm"}
    return {"operator": "ablate", "layers": 1}


@pytest.mark.parametrize("arch,tied,operator", CASES)
def test_reloaded_checkpoint_generates_like_hooks(
    tmp_path: Path, arch: str, tied: bool, operator: str
) -> None:
    model, tokenizer = make_fold_model(arch, tied=tied)
    vector, inputs = random_vector(model), batch(tokenizer)
    kwargs = _hooked_kwargs(operator)
    fold(model, vector, output_dir=tmp_path / "folded", tokenizer=tokenizer, **kwargs)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "folded", attn_implementation="eager")
    plain.eval()
    settings = {
        "max_new_tokens": 12,
        "do_sample": False,
        "use_cache": True,
        "pad_token_id": tokenizer.pad_token_id,
    }
    hooks = {"sites": "everywhere"} if operator == "ablate" else {}
    with steer(model, vector, **kwargs, **hooks):
        hooked_logits = model(**inputs).logits
        hooked_tokens = model.generate(**inputs, **settings)
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(
        plain(**inputs).logits[mask], hooked_logits[mask], atol=1e-5, rtol=1e-5
    )
    assert torch.equal(plain.generate(**inputs, **settings), hooked_tokens)


def test_folder_records_provenance(tmp_path: Path) -> None:
    model, tokenizer = make_fold_model("llama")
    vector = random_vector(model)
    vector_file = vector.save(tmp_path / "v.safetensors")
    out = tmp_path / "out"
    fold(
        model,
        vector,
        coefficient=0.2,
        layers=1,
        scale="unit",
        output_dir=out,
        tokenizer=tokenizer,
        vector_file=vector_file,
    )
    record = json.loads((out / FOLD_FILE).read_text())
    assert record["vector"]["file_sha256"] == sha256_of_file(vector_file)
    assert record["vector"]["sha256"] == vector.sha256()
    assert (record["operator"], record["scale"], record["layers"]) == ("add", "unit", [1])
    assert record["bias_switch"] == {"attribute": "mlp_bias", "zero_biases": 9}
    assert json.loads((out / "config.json").read_text())["mlp_bias"] is True
    assert (out / "tokenizer_config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "v.safetensors"]


def test_refuses_a_folder_that_is_not_new(tmp_path: Path) -> None:
    model, tokenizer = make_fold_model("gpt2")
    folded = fold(model, random_vector(model), operator="ablate", layers=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(SpecError, match="not empty"):
        save_folded(folded, tokenizer, tmp_path / "full")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match="not a folder"):
        save_folded(folded, tokenizer, tmp_path / "file")
    (tmp_path / "empty").mkdir()
    save_folded(folded, tokenizer, tmp_path / "empty")  # an empty folder is fine
    assert (tmp_path / "empty" / FOLD_FILE).is_file()
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(SpecError, match="not folded"):
        save_folded(model, tokenizer, tmp_path / "unfolded")


def test_a_config_that_drops_the_bias_is_detected(tmp_path: Path) -> None:
    model, tokenizer = make_fold_model("llama")
    folded = fold(model, random_vector(model), coefficient=0.5, layers=1)
    save_folded(folded, tokenizer, tmp_path / "out")
    config_path = tmp_path / "out" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "mlp_bias": False}))
    with pytest.raises(SpecError, match="lost mlp_bias=True"):
        check_reloads(tmp_path / "out", dict(fold_record(folded)))
    # Without the record's hint, transformers' own loading report still catches it.
    with pytest.raises(SpecError, match=r"would drop .*bias"):
        check_reloads(tmp_path / "out", {})


def test_a_config_that_ties_again_is_detected(tmp_path: Path) -> None:
    model, tokenizer = make_fold_model("llama", tied=True)
    folded = fold(model, random_vector(model), operator="ablate", layers=1)
    save_folded(folded, tokenizer, tmp_path / "out")
    config_path = tmp_path / "out" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["tie_word_embeddings"] is False
    config_path.write_text(json.dumps({**config, "tie_word_embeddings": True}))
    with pytest.raises(SpecError, match="ties the embeddings again"):
        check_reloads(tmp_path / "out", dict(fold_record(folded)))


def test_a_failed_check_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = make_fold_model("llama")

    def failing(folder: Path, record: dict) -> None:
        raise SpecError("transformers would drop x when loading the folded checkpoint")

    monkeypatch.setattr(checkpoint_module, "check_reloads", failing)
    with pytest.raises(SpecError, match="would drop"):
        fold(
            model,
            random_vector(model),
            coefficient=0.5,
            layers=1,
            output_dir=tmp_path / "out",
            tokenizer=tokenizer,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_refused_fold_writes_nothing(tmp_path: Path) -> None:
    model, _tokenizer = make_fold_model("mistral")
    with pytest.raises(SpecError):
        fold(model, random_vector(model), coefficient=0.5, layers=1, output_dir=tmp_path / "o")
    assert list(tmp_path.iterdir()) == []
