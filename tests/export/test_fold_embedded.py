"""The embedded model (SmolLM2-135M, tied embeddings) folded, saved and reloaded with plain
``AutoModelForCausalLM`` matches hooked steering: logits close, greedy tokens equal; the
rank-1 adapter, loaded unmerged with peft, matches hooked ablation everywhere."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

import steerlab
from steerlab.models import peft_wrapping
from steerlab.record import measure_activation_norms

pytestmark = pytest.mark.slow

PROMPTS = ["Tell me about your weekend.", "How do you feel today?"]
ADD = {"coefficient": 0.05, "layers": "12-18", "scale": "norm"}
ABLATE = {"operator": "ablate", "layers": 15}


@pytest.fixture(scope="module")
def embedded():
    model, tokenizer = steerlab.load_model("default")
    pairs = steerlab.builtin_pairs("happy_sad", limit=16)
    vector = steerlab.extract(model, tokenizer, pairs, method="mean_diff", layers="all")
    if vector.activation_norms is None:
        vector = vector.with_activation_norms(measure_activation_norms(model, tokenizer))
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    return model, tokenizer, vector, inputs


def _greedy(model, inputs, tokenizer) -> torch.Tensor:
    return model.generate(
        **inputs, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )


@pytest.mark.parametrize("kwargs", [ADD, ABLATE], ids=["add", "ablate"])
def test_folded_embedded_model_reloads_like_hooks(embedded, tmp_path: Path, kwargs) -> None:
    model, tokenizer, vector, inputs = embedded
    steerlab.fold(model, vector, output_dir=tmp_path / "f", tokenizer=tokenizer, **kwargs)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "f").eval()
    hooks = {"sites": "everywhere"} if kwargs.get("operator") == "ablate" else {}
    mask = inputs["attention_mask"].bool()
    with steer_ctx(model, vector, kwargs, hooks):
        hooked = model(**inputs).logits[mask]
        hooked_tokens = _greedy(model, inputs, tokenizer)
    assert not torch.allclose(hooked, model(**inputs).logits[mask], atol=1e-2)
    torch.testing.assert_close(plain(**inputs).logits[mask], hooked, atol=1e-4, rtol=1e-4)
    assert torch.equal(_greedy(plain, inputs, tokenizer), hooked_tokens)


def test_adapter_on_the_embedded_model(embedded, tmp_path: Path) -> None:
    model, tokenizer, vector, inputs = embedded
    folder = steerlab.fold_adapter(model, vector, layers=15, output_dir=tmp_path / "a")
    with peft_wrapping():
        adapted = PeftModel.from_pretrained(copy.deepcopy(model), folder).eval()
    mask = inputs["attention_mask"].bool()
    with steerlab.steer(model, vector, operator="ablate", layers=15, sites="everywhere"):
        hooked = model(**inputs).logits[mask]
        hooked_tokens = _greedy(model, inputs, tokenizer)
    torch.testing.assert_close(adapted(**inputs).logits[mask], hooked, atol=1e-4, rtol=1e-4)
    assert torch.equal(_greedy(adapted, inputs, tokenizer), hooked_tokens)


def test_fold_command_on_the_embedded_model(embedded, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from steerlab.cli import app

    model, tokenizer, vector, inputs = embedded
    vector_file = vector.save(tmp_path / "happy.safetensors")
    out = tmp_path / "folded"
    args = ["fold", "--model", "default", "-v", str(vector_file), "--coefficient", "0.05"]
    result = CliRunner().invoke(app, [*args, "--layers", "12-18", "-o", str(out)])
    assert result.exit_code == 0, result.output
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    with steerlab.steer(model, vector, **ADD):
        hooked_tokens = _greedy(model, inputs, tokenizer)
    assert torch.equal(_greedy(plain, inputs, tokenizer), hooked_tokens)


def steer_ctx(model, vector, kwargs, hooks):
    """``steerlab.steer`` with the fold's arguments (and ``sites`` for ablate)."""
    return steerlab.steer(model, vector, **{**kwargs, **hooks})
