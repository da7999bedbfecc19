"""Model-diff vectors on tiny models (and `steerlab compare` from the CLI)."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from typer.testing import CliRunner

import steerlab as sl
from conftest import make_model
from steerlab.cli import app
from steerlab.errors import ModelMismatchError, SpecError
from steerlab.extract.model_diff import answer_examples, model_diff, question_examples

QUESTIONS = ["What is the capital of France?", "Tell me about your day.", "Is the sky grey?"]


def lora_copy(model, seed: int = 0, zero: bool = True):
    tuned = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "down_proj"])
    )
    if not zero:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, parameter in tuned.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    tuned.eval()
    return tuned


def test_zero_initialised_lora_gives_a_zero_diff():
    model, tokenizer = make_model("llama")
    tuned = lora_copy(model)
    vector = model_diff(
        model, tuned, tokenizer, question_examples(tokenizer, QUESTIONS), progress=False
    )
    assert vector.metadata.method == "model_diff"
    assert vector.metadata.extra["sign"] == "tuned - base"
    assert all(float(v.abs().max()) == 0.0 for v in vector.directions.values())


@pytest.mark.parametrize("position", ["last", "mean"])
def test_sign_is_tuned_minus_base(position):
    model, tokenizer = make_model("llama")
    tuned = lora_copy(model, zero=False)
    chats = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": "Yes, it is."}]
        for q in QUESTIONS
    ]
    examples = (
        answer_examples(tokenizer, chats)
        if position == "mean"
        else question_examples(tokenizer, QUESTIONS)
    )
    vector = model_diff(model, tuned, tokenizer, examples, position=position, progress=False)
    reverse = model_diff(tuned, model, tokenizer, examples, position=position, progress=False)
    before = sl.record(model, tokenizer, examples, "all", position)
    after = sl.record(tuned, tokenizer, examples, "all", position)
    for layer in vector.layers:
        expected = (after[layer].double() - before[layer].double()).mean(0).float()
        assert torch.allclose(vector[layer], expected, atol=1e-6)
        assert torch.allclose(reverse[layer], -vector[layer], atol=1e-6)
    assert float(vector[2].norm()) > 0


def test_pca_diff_method_is_oriented_along_the_mean():
    model, tokenizer = make_model("llama")
    tuned = lora_copy(model, zero=False)
    examples = question_examples(tokenizer, QUESTIONS)
    mean = model_diff(model, tuned, tokenizer, examples, progress=False)
    pca = model_diff(model, tuned, tokenizer, examples, diff_method="pca", progress=False)
    for layer in mean.layers:
        assert float(pca[layer] @ mean[layer]) > 0


def test_mismatched_models_are_refused():
    model, tokenizer = make_model("llama", hidden=32)
    with pytest.raises(ModelMismatchError, match="same architecture"):
        model_diff(model, make_model("llama", hidden=48)[0], tokenizer, QUESTIONS, progress=False)
    with pytest.raises(ModelMismatchError, match="gpt2"):
        model_diff(model, make_model("gpt2", hidden=32)[0], tokenizer, QUESTIONS, progress=False)
    with pytest.raises(SpecError, match="diff method"):
        model_diff(model, model, tokenizer, QUESTIONS, diff_method="median", progress=False)


def test_compare_cli(tmp_path):
    model, tokenizer = make_model("llama")
    vector = sl.extract(
        model, tokenizer, [sl.ContrastPair("happy", "sad")], "mean_diff", progress=False
    )
    a, b = vector.save(tmp_path / "a.safetensors"), (-vector).save(tmp_path / "b.safetensors")
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "-1.000" in result.output
    assert (tmp_path / "out" / "cosine.png").is_file()
    bad = CliRunner().invoke(app, ["compare", str(a)])
    assert bad.exit_code == 1 and "at least two" in bad.output


def test_diff_cli_with_an_adapter_folder(tmp_path):
    model, tokenizer = make_model("llama")
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    tuned = lora_copy(model, zero=False)
    tuned.peft_config["default"].base_model_name_or_path = str(base_dir)
    tuned.save_pretrained(adapter_dir)
    questions = tmp_path / "q.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n")
    out = tmp_path / "diff.safetensors"
    args = [
        "diff",
        "--base",
        str(base_dir),
        "--tuned",
        str(adapter_dir),
        "--prompts",
        str(questions),
    ]
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    vector = sl.SteeringVector.load(out)
    expected = model_diff(
        model,
        tuned.merge_and_unload(),
        tokenizer,
        question_examples(tokenizer, QUESTIONS),
        progress=False,
    )
    assert vector.metadata.extra["tuned_model"] == str(adapter_dir)
    for layer in vector.layers:
        assert torch.allclose(vector[layer], expected[layer], atol=1e-5)
    other = tmp_path / "other"
    wide, wide_tok = make_model("llama", hidden=48)
    wide.save_pretrained(other)
    wide_tok.save_pretrained(other)
    bad = CliRunner().invoke(
        app,
        [
            "diff",
            "--base",
            str(base_dir),
            "--tuned",
            str(other),
            "--prompts",
            str(questions),
            "-o",
            str(tmp_path / "x.safetensors"),
        ],
    )
    assert bad.exit_code == 1 and "same architecture" in bad.output
    assert not (tmp_path / "x.safetensors").exists()
