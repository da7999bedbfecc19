"""Representation tuning: cosine loss maths, position masks, trainer, tune() run folders."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from conftest import make_model, make_tokenizer
from steerlab.errors import ModelMismatchError, SpecError
from steerlab.hooks import hook_count, hooked
from steerlab.layers import find_layers
from steerlab.models import model_identity
from steerlab.tuning import (
    IGNORE_INDEX,
    ChatDataset,
    FinetuneConfig,
    RepresentationConfig,
    collator_for,
    cosine_loss,
    finetune,
    mean_cosine,
    position_mask,
    read_loss_log,
    tune,
)
from steerlab.vector import SteeringVector, VectorMetadata

CHATS = [
    [
        {"role": "user", "content": "Tell me about your day."},
        {"role": "assistant", "content": "It was a good day at work."},
    ],
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital of France."},
    ],
] * 4
PROBES = ["The quick brown fox", "Paris is the capital of France."]
FAST: dict[str, Any] = {"progress": False}


def tiny() -> tuple[torch.nn.Module, Any]:
    return make_model("llama", layers=3, hidden=32)


def random_vector(model: torch.nn.Module, layers: tuple[int, ...] = (0, 1, 2), seed: int = 1):
    identity = model_identity(model)
    generator = torch.Generator().manual_seed(seed)
    directions = {layer: torch.randn(identity.hidden_size, generator=generator) for layer in layers}
    return SteeringVector(directions, VectorMetadata.for_model(identity, "mean_diff"))


def quick(**overrides: Any) -> FinetuneConfig:
    settings: dict[str, Any] = {
        "max_steps": 2,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "max_length": 64,
        "save_steps": 50,
        "rank": 4,
        "merge": True,
    }
    settings.update(overrides)
    return FinetuneConfig(**settings)


def full_batch(tokenizer: Any) -> dict[str, torch.Tensor]:
    return collator_for(tokenizer)(ChatDataset(tokenizer, CHATS, 64).examples)


def hidden_at(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], layers: tuple[int, ...]
) -> dict[int, torch.Tensor]:
    blocks = find_layers(model).blocks
    captured: dict[int, torch.Tensor] = {}

    def keep(layer: int) -> Callable[[torch.Tensor], None]:
        return lambda hidden: captured.__setitem__(layer, hidden.detach())

    with torch.no_grad(), hooked(outputs=[(blocks[layer], keep(layer)) for layer in layers]):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return captured


def cosine_to(model: torch.nn.Module, tokenizer: Any, vector: SteeringVector, layer: int) -> float:
    batch = full_batch(tokenizer)
    mask = position_mask(batch["attention_mask"], batch["labels"], "all")
    return mean_cosine(hidden_at(model, batch, (layer,)), {layer: vector[layer]}, mask)[layer]


def logits_of(model: torch.nn.Module, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(PROBES, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- maths -----------------------------------------------------------------------------------


def test_cosine_loss_matches_a_hand_computation() -> None:
    generator = torch.Generator().manual_seed(0)
    hidden = {layer: torch.randn(2, 5, 6, generator=generator) for layer in (0, 2)}
    targets = {layer: torch.randn(6, generator=generator) * 3 for layer in (0, 2)}
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    weights = {0: 1.0, 2: 3.0}
    for sign in (1.0, -1.0):
        expected_layers = {}
        for layer in (0, 2):
            terms = []
            for b in range(2):
                for t in range(5):
                    if not mask[b, t]:
                        continue
                    h = hidden[layer][b, t].tolist()
                    v = [sign * x for x in targets[layer].tolist()]
                    dot = sum(x * y for x, y in zip(h, v, strict=True))
                    norm = math.sqrt(sum(x * x for x in h)) * math.sqrt(sum(y * y for y in v))
                    terms.append(1 - dot / norm)
            expected_layers[layer] = sum(terms) / len(terms)
        expected = (1 * expected_layers[0] + 3 * expected_layers[2]) / 4
        got = cosine_loss(hidden, targets, mask, sign=sign, layer_weights=weights)
        assert got.shape == () and float(got) == pytest.approx(expected, abs=1e-6)
        equal = (expected_layers[0] + expected_layers[2]) / 2
        assert float(cosine_loss(hidden, targets, mask, sign=sign)) == pytest.approx(
            equal, abs=1e-6
        )
    cos = mean_cosine(hidden, targets, mask)
    assert cos[0] == pytest.approx(1 - float(cosine_loss({0: hidden[0]}, targets, mask)), abs=1e-6)


def test_cosine_loss_gradients_and_empty_mask() -> None:
    hidden = torch.randn(2, 4, 8, requires_grad=True)
    target = {1: torch.randn(8)}
    loss = cosine_loss({1: hidden}, target, torch.ones(2, 4, dtype=torch.bool))
    loss.backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0

    empty = torch.randn(2, 4, 8, requires_grad=True)
    zero = cosine_loss({1: empty}, target, torch.zeros(2, 4, dtype=torch.bool))
    assert float(zero.detach()) == 0.0
    zero.backward()
    assert empty.grad is not None and torch.equal(empty.grad, torch.zeros_like(empty))
    assert math.isnan(mean_cosine({1: empty}, target, torch.zeros(2, 4, dtype=torch.bool))[1])

    half = torch.randn(1, 2, 8, dtype=torch.bfloat16, requires_grad=True)
    assert cosine_loss({1: half}, target, torch.ones(1, 2, dtype=torch.bool)).dtype == torch.float32
    with pytest.raises(SpecError, match="no target direction for layer 3"):
        cosine_loss({3: hidden}, target, torch.ones(2, 4, dtype=torch.bool))


def left_padded(batch: dict[str, torch.Tensor], pad: int) -> dict[str, torch.Tensor]:
    """The right-padded collator batch with each row's padding moved to the left."""
    out = {key: torch.empty_like(value) for key, value in batch.items()}
    fill = {"input_ids": pad, "attention_mask": 0, "labels": IGNORE_INDEX}
    for row in range(batch["input_ids"].shape[0]):
        n = int(batch["attention_mask"][row].sum())
        for key, value in batch.items():
            out[key][row] = torch.cat([torch.full_like(value[row, n:], fill[key]), value[row, :n]])
    return out


def test_position_masks_on_the_collator_output() -> None:
    tokenizer = make_tokenizer()
    right = collator_for(tokenizer)(ChatDataset(tokenizer, CHATS[:2], 64).examples)
    lengths = right["attention_mask"].sum(dim=1).tolist()
    assert lengths[0] != lengths[1]  # one row is padded
    left = left_padded(right, tokenizer.pad_token_id)
    seq = right["input_ids"].shape[1]
    replies = [chat[1]["content"] + "<|im_end|>" for chat in CHATS[:2]]
    for batch, last_index in ((right, [n - 1 for n in lengths]), (left, [seq - 1, seq - 1])):
        everything = position_mask(batch["attention_mask"], batch["labels"], "all")
        assert torch.equal(everything, batch["attention_mask"].bool())
        answer = position_mask(batch["attention_mask"], batch["labels"], "answer")
        decoded = [tokenizer.decode(batch["input_ids"][r][answer[r]]) for r in range(2)]
        assert decoded == replies
        last = position_mask(batch["attention_mask"], None, "last")
        assert last.sum(dim=1).tolist() == [1, 1]
        assert [int(row.nonzero()) for row in last] == last_index
    with pytest.raises(SpecError, match="answer"):
        position_mask(right["attention_mask"], None, "answer")
    with pytest.raises(SpecError, match="positions"):
        position_mask(right["attention_mask"], None, "first")


# -- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"layers": ()}, "layers"),
        ({"layers": (-1,)}, "layers"),
        ({"layers": (1, 1)}, "layers"),
        ({"layers": 1}, "layers"),
        ({"layers": (1,), "rep_weight": -1.0}, "rep_weight"),
        ({"layers": (1,), "rep_weight": float("inf")}, "rep_weight"),
        ({"layers": (1,), "direction": "up"}, "direction"),
        ({"layers": (1,), "positions": "first"}, "positions"),
        ({"layers": (1, 2), "layer_weights": (1.0,)}, "layer_weights"),
        ({"layers": (1, 2), "layer_weights": (0.0, 0.0)}, "layer_weights"),
        ({"layers": (1, 2), "layer_weights": (-1.0, 2.0)}, "layer_weights"),
        ({"layers": (1,), "token_loss": False, "rep_weight": 0.0}, "token_loss"),
        ({"layers": (1,), "token_loss": "no"}, "token_loss"),
    ],
)
def test_representation_config_validation(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as info:
        RepresentationConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_representation_config_values() -> None:
    config = RepresentationConfig(layers=[2, 1], layer_weights=[1, 2], direction="away")  # type: ignore[arg-type]
    assert config.layers == (2, 1) and config.layer_weights == (1, 2)
    assert config.sign == -1.0 and RepresentationConfig(layers=(0,)).sign == 1.0
    assert json.loads(json.dumps(config.to_dict())) == {
        "layers": [2, 1],
        "rep_weight": 1.0,
        "direction": "away",
        "positions": "all",
        "layer_weights": [1.0, 2.0],
        "token_loss": True,
    }


def test_vector_must_fit_the_model(tmp_path: Path) -> None:
    model, tokenizer = tiny()
    partial = random_vector(model, layers=(0, 2))
    with pytest.raises(SpecError, match="no direction at layer 1; it has layers 0,2"):
        tune(model, tokenizer, partial, CHATS, tmp_path / "a", RepresentationConfig((1,)), **FAST)
    other, _ = make_model("llama", layers=3, hidden=48)
    with pytest.raises(ModelMismatchError, match="hidden size 48"):
        tune(
            model,
            tokenizer,
            random_vector(other),
            CHATS,
            tmp_path / "b",
            RepresentationConfig((1,)),
            **FAST,
        )
    assert not getattr(model, "peft_config", None)  # refused before touching the model


# -- training --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lora", "layers"])
def test_zero_weight_is_exactly_plain_cross_entropy(tmp_path: Path, method: str) -> None:
    config = quick(full_finetune_layers=(1, 2) if method == "layers" else None)
    model, tokenizer = tiny()
    plain = finetune(model, tokenizer, CHATS, tmp_path / "plain", config, **FAST)
    model, tokenizer = tiny()
    representation = RepresentationConfig(layers=(1,), rep_weight=0.0)
    vector = random_vector(model)
    tuned = tune(model, tokenizer, vector, CHATS, tmp_path / "rep", representation, config, **FAST)
    assert tuned.losses == plain.losses and tuned.global_step == plain.global_step == 2
    if method == "lora":  # the adapters (every trainable parameter), then the merged weights
        a = load_file(tmp_path / "plain" / "adapter_model.safetensors")
        b = load_file(tmp_path / "rep" / "adapter_model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    else:
        trainable = [n for n, p in tuned.model.named_parameters() if p.requires_grad]
        assert trainable and all(
            n.startswith(("model.layers.1.", "model.layers.2.")) for n in trainable
        )
    assert same_state(plain.model, tuned.model)
    rows = read_loss_log(tmp_path / "rep")
    assert all({"ce_loss", "rep_loss", "cos_sim"} <= set(row) for row in rows)
    assert all(
        row["rep_term"] == 0 and row["ce_loss"] == pytest.approx(row["loss"]) for row in rows
    )


@pytest.mark.parametrize(
    ("method", "direction"), [("lora", "toward"), ("lora", "away"), ("layers", "toward")]
)
def test_one_step_moves_the_cosine(tmp_path: Path, method: str, direction: str) -> None:
    model, tokenizer = tiny()
    vector = random_vector(model)
    before = cosine_to(model, tokenizer, vector, 1)
    config = quick(
        max_steps=1, batch_size=8, full_finetune_layers=(0, 1) if method == "layers" else None
    )
    representation = RepresentationConfig(layers=(1,), rep_weight=10.0, direction=direction)
    result = tune(model, tokenizer, vector, CHATS, tmp_path / "run", representation, config, **FAST)
    after = cosine_to(result.model, tokenizer, vector, 1)
    assert (after > before + 0.05) if direction == "toward" else (after < before - 0.05)
    row = read_loss_log(tmp_path / "run")[0]
    assert row["cos_sim"] == pytest.approx(before if direction == "toward" else -before, abs=1e-5)


def test_representation_only_skips_the_head(tmp_path: Path) -> None:
    model, tokenizer = tiny()
    vector = random_vector(model)
    before = cosine_to(model, tokenizer, vector, 1)
    blocks = find_layers(model).blocks
    calls = {"first": 0, "last": 0, "head": 0}

    def count(name: str) -> Callable[[tuple[Any, ...], Any], None]:
        return lambda _args, _kwargs: calls.__setitem__(name, calls[name] + 1)

    watched = [(blocks[0], count("first")), (blocks[2], count("last"))]
    watched.append((model.lm_head, count("head")))
    representation = RepresentationConfig(layers=(1,), token_loss=False)
    config = quick(gradient_accumulation=2, batch_size=2)
    with hooked(inputs=watched):
        result = tune(
            model, tokenizer, vector, CHATS, tmp_path / "run", representation, config, **FAST
        )
    assert calls["first"] == 4 and calls["last"] == 0 and calls["head"] == 0
    assert cosine_to(result.model, tokenizer, vector, 1) > before + 0.05
    rows = read_loss_log(tmp_path / "run")
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert "ce_loss" not in row and {"rep_loss", "cos_sim", "rep_term"} <= set(row)
        # accumulation is scaled like the base class: the loss is the mean per-batch term
        assert row["loss"] == pytest.approx(row["rep_term"], rel=1e-4)
        assert row["cos_sim"] == pytest.approx(1 - row["rep_loss"], abs=1e-5)


def test_loss_log_and_merged_checkpoint(tmp_path: Path) -> None:
    model, tokenizer = tiny()
    vector = random_vector(model)
    representation = RepresentationConfig(
        layers=(0, 2), layer_weights=(1.0, 2.0), positions="answer"
    )
    config = FinetuneConfig(  # merge=False is overridden: tune always merges LoRA runs
        max_steps=2, batch_size=2, gradient_accumulation=2, max_length=64, rank=4, merge=False
    )
    out = tmp_path / "run"
    result = tune(model, tokenizer, vector, CHATS, out, representation, config, **FAST)
    rows = read_loss_log(out)
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert {"ce_loss", "rep_loss", "cos_sim", "rep_term"} <= set(row)
        assert row["rep_term"] == pytest.approx(row["rep_loss"], rel=1e-4)
        assert row["loss"] == pytest.approx(row["ce_loss"] + row["rep_term"], rel=1e-4)

    assert result.merged_dir == out / "merged" and result.adapter_dir == out
    plain = AutoModelForCausalLM.from_pretrained(out / "merged", attn_implementation="eager")
    assert torch.equal(logits_of(plain.eval(), tokenizer), logits_of(result.model, tokenizer))
    assert hook_count(result.model) == 0 and hook_count(model) == 0

    record = json.loads(result.provenance.read_text())
    assert record["kind"] == "represent" and record["config"]["merge"] is True
    assert record["stopped_early"] is False and record["status"] == "complete"
    rep = record["representation"]
    assert rep["layers"] == [0, 2] and rep["layer_weights"] == [1.0, 2.0]
    assert rep["positions"] == "answer" and rep["vector_model"] == "tiny-llama"
    assert rep["vector_method"] == "mean_diff" and len(rep["vector_sha256"]) == 64


def test_layer_run_folder_is_the_plain_checkpoint(tmp_path: Path) -> None:
    model, tokenizer = tiny()
    vector = random_vector(model)
    out = tmp_path / "run"
    config = quick(full_finetune_layers=(1,), learning_rate=1e-3, max_steps=1)
    result = tune(model, tokenizer, vector, CHATS, out, RepresentationConfig((1,)), config, **FAST)
    assert result.merged_dir == out and result.model is model and result.trained_layers == (1,)
    plain = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager")
    assert torch.equal(logits_of(plain.eval(), tokenizer), logits_of(result.model, tokenizer))
    assert hook_count(result.model) == 0


def test_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    config = quick(lr_scheduler="constant", save_steps=1)
    representation = RepresentationConfig(layers=(1,), rep_weight=2.0)
    out = tmp_path / "run"

    def run(folder: Path, steps: int, rep: RepresentationConfig = representation, seed: int = 1):
        model, tokenizer = tiny()
        vector = random_vector(model, seed=seed)
        settings = FinetuneConfig(**{**config.to_dict(), "max_steps": steps})
        return tune(model, tokenizer, vector, CHATS, folder, rep, settings, **FAST)

    first = run(out, 2)
    assert first.resumed_from is None
    resumed = run(out, 4)
    assert resumed.resumed_from == out / "checkpoint-2" and resumed.global_step == 4
    straight = run(tmp_path / "straight", 4)
    assert resumed.losses == straight.losses
    assert same_state(resumed.model, straight.model)

    other = RepresentationConfig(layers=(1,), rep_weight=3.0)
    with pytest.raises(SpecError, match=r"another representation\.rep_weight \(2\.0, now 3\.0\)"):
        run(out, 5, other)
    away = RepresentationConfig(layers=(1,), rep_weight=2.0, direction="away")
    with pytest.raises(SpecError, match=r"another representation\.direction"):
        run(out, 5, away)
    with pytest.raises(SpecError, match=r"another representation\.vector_sha256"):
        run(out, 5, seed=2)


def test_early_stopping_stops_before_max_steps(tmp_path: Path) -> None:
    model, tokenizer = tiny()
    vector = random_vector(model)
    config = quick(
        max_steps=4,
        save_steps=1,
        eval_fraction=0.25,
        early_stopping_patience=1,
        early_stopping_threshold=1e9,
    )
    out = tmp_path / "run"
    result = tune(model, tokenizer, vector, CHATS, out, RepresentationConfig((1,)), config, **FAST)
    # The first evaluation sets the reference, the second fails to beat it by 1e9: stop.
    assert result.stopped_early and result.global_step == 2
    record = json.loads(result.provenance.read_text())
    assert record["stopped_early"] is True and record["global_step"] == 2
    assert record["best_checkpoint"] in ("checkpoint-1", "checkpoint-2")
    assert record["best_metric"] > 0
    assert record["config"]["early_stopping_patience"] == 1
    assert result.eval_loss == pytest.approx(record["best_metric"], rel=1e-5)
