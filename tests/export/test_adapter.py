"""Rank-1 LoRA ablation adapters: ``PeftModel.from_pretrained(base, DIR)`` equals hooked
ablation everywhere (logits within 1e-5), the base is untouched, and what LoRA cannot express
is refused with one line and no folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from fold_models import PEFT_ARCHS, TIED_ARCHS, batch, make_fold_model, random_vector
from peft import PeftModel

from steerlab.errors import SpecError
from steerlab.export.adapter import fold_adapter
from steerlab.export.checkpoint import FOLD_FILE
from steerlab.models import peft_wrapping
from steerlab.steer import SteerSpec, steer

CASES = [(arch, False) for arch in PEFT_ARCHS] + [
    (arch, True) for arch in TIED_ARCHS if arch in PEFT_ARCHS
]


def _logits(model, inputs) -> torch.Tensor:
    return model(**inputs).logits[inputs["attention_mask"].bool()]


@pytest.mark.parametrize("arch,tied", CASES)
def test_adapter_equals_hooks_everywhere(tmp_path: Path, arch: str, tied: bool) -> None:
    model, tokenizer = make_fold_model(arch, tied=tied)
    vector, inputs = random_vector(model), batch(tokenizer)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    folder = fold_adapter(model, vector, layers=1, output_dir=tmp_path / "adapter")
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
    with steer(model, vector, operator="ablate", layers=1, sites="everywhere"):
        hooked = _logits(model, inputs)
    with peft_wrapping():
        adapted = PeftModel.from_pretrained(copy.deepcopy(model), folder).eval()
    assert not torch.allclose(hooked, _logits(model, inputs), atol=1e-2)
    torch.testing.assert_close(_logits(adapted, inputs), hooked, atol=1e-5, rtol=1e-5)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (1, 1)
    assert set(config["target_modules"]) == {"embed_tokens", "o_proj", "down_proj"}
    record = json.loads((folder / FOLD_FILE).read_text())
    assert record["format"] == "steerlab.adapter/1" and record["tied_embeddings"] is tied
    assert record["vector"]["sha256"] == vector.sha256()


def test_adapter_matches_the_folded_checkpoint_when_merged_untied(tmp_path: Path) -> None:
    from steerlab.export.fold import fold

    model, tokenizer = make_fold_model("qwen3")
    vector, inputs = random_vector(model), batch(tokenizer)
    folder = fold_adapter(
        model, vector, SteerSpec(0.5, layers=2, operator="ablate"), output_dir=tmp_path / "a"
    )
    with peft_wrapping():
        merged = PeftModel.from_pretrained(copy.deepcopy(model), folder).merge_and_unload()
    folded = fold(model, vector, SteerSpec(0.5, layers=2, operator="ablate"))
    torch.testing.assert_close(
        _logits(merged, inputs), _logits(folded, inputs), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize(
    "arch,match",
    [
        ("gpt2", "Conv1D"),
        ("gpt_neox", "has a bias"),
        ("phi", "has a bias"),
        ("mixtral", "mixture-of-experts"),
        ("gemma2", "post-norms"),
    ],
)
def test_architectures_lora_cannot_cover_are_refused(tmp_path: Path, arch: str, match: str) -> None:
    model, _ = make_fold_model(arch)
    with pytest.raises(Exception, match=match) as caught:
        fold_adapter(model, random_vector(model), layers=1, output_dir=tmp_path / "a")
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "spec,match",
    [
        (SteerSpec(0.5, layers=1), "'ablate' only"),
        (SteerSpec(1.0, layers=(1, 2), operator="ablate"), "not 2 layers"),
        (SteerSpec(1.0, layers=1, operator="clamp"), "clamp"),
        (SteerSpec(1.0, layers=1, operator="ablate", positions="generated"), "positions"),
    ],
)
def test_specs_lora_cannot_express_are_refused(tmp_path: Path, spec: SteerSpec, match: str) -> None:
    model, _ = make_fold_model("llama")
    with pytest.raises(SpecError, match=match):
        fold_adapter(model, random_vector(model), spec, output_dir=tmp_path / "a")
    assert list(tmp_path.iterdir()) == []


def test_a_used_folder_is_refused(tmp_path: Path) -> None:
    model, _ = make_fold_model("llama")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("keep")
    with pytest.raises(SpecError, match="not empty"):
        fold_adapter(model, random_vector(model), layers=1, output_dir=tmp_path / "a")
    assert (tmp_path / "a" / "x").read_text() == "keep"


def test_load_model_of_an_adapter_on_a_tied_base(tmp_path: Path) -> None:
    from steerlab.models import load_model

    model, tokenizer = make_fold_model("llama", tied=True)
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    base, tokenizer = load_model(str(tmp_path / "base"))
    vector, inputs = random_vector(base), batch(tokenizer)
    fold_adapter(
        base,
        vector,
        layers=1,
        output_dir=tmp_path / "adapter",
        base_model_name_or_path=str(tmp_path / "base"),
    )
    merged, _ = load_model(str(tmp_path / "adapter"))
    with steer(base, vector, operator="ablate", layers=1, sites="everywhere"):
        hooked = _logits(base, inputs)
    torch.testing.assert_close(_logits(merged, inputs), hooked, atol=1e-5, rtol=1e-5)
