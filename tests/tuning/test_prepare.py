"""Getting a model ready to train: LoRA targets, zero-initialised adapters, TrainingArguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import make_model
from steerlab.errors import SpecError
from steerlab.tuning import FinetuneConfig, linear_module_names, prepare_model, training_arguments

PROBES = ["The quick brown fox", "Paris is the capital of France."]


def logits_of(model: torch.nn.Module, tokenizer: Any, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("llama", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
        ("gpt2", {"c_attn", "c_proj", "c_fc"}),
        ("gpt_neox", {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"}),
        ("phi3", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),
    ],
)
def test_auto_target_modules(arch: str, expected: set[str]) -> None:
    model, _ = make_model(arch, layers=2)
    assert set(linear_module_names(model)) == expected


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox"])
def test_zero_initialised_lora_changes_nothing(arch: str) -> None:
    model, tokenizer = make_model(arch, layers=2)
    before = logits_of(model, tokenizer, PROBES)
    wrapped, targets, layers = prepare_model(model, FinetuneConfig(), "tiny")
    assert targets and layers == ()
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert torch.equal(logits_of(wrapped, tokenizer, PROBES), before)
    with pytest.raises(SpecError, match="already carries peft adapters"):
        prepare_model(model, FinetuneConfig(), "tiny")


def test_unknown_target_module_is_an_error() -> None:
    model, _ = make_model("llama", layers=2)
    with pytest.raises(SpecError, match=r"'qkv' is not a linear module.*q_proj"):
        prepare_model(model, FinetuneConfig(target_modules=("q_proj", "qkv")), "tiny")


def test_layer_finetune_freezes_all_but_the_chosen_layers() -> None:
    model, _ = make_model("llama", layers=3)
    wrapped, targets, layers = prepare_model(
        model, FinetuneConfig(full_finetune_layers=(2, 0)), "tiny"
    )
    assert wrapped is model and targets == () and sorted(layers) == [0, 2]
    trainable = {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"0", "2"}


def test_training_arguments_follow_the_config(tmp_path: Path) -> None:
    config = FinetuneConfig(
        batch_size=2,
        gradient_accumulation=3,
        max_steps=7,
        save_steps=5,
        eval_fraction=0.2,
        early_stopping_patience=2,
        lr_scheduler="cosine",
    )
    args = training_arguments(config, tmp_path, progress=False, evaluate=True)
    assert args.per_device_train_batch_size == 2 and args.gradient_accumulation_steps == 3
    assert args.max_steps == 7 and args.save_steps == 5 and args.eval_steps == 5
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.disable_tqdm and args.report_to == []
    assert training_arguments(FinetuneConfig(), tmp_path).max_steps == -1
    assert training_arguments(FinetuneConfig(), tmp_path, overrides={"seed": 9}).seed == 9
