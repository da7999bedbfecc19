"""What data-parallel training needs that one process can check: representation-only mode
freezes what follows the deepest cosine layer, a single process's cosine term is unchanged,
``--device-map`` trains in one process and is refused (one line, exit 1, nothing written)
under a launcher, and so is a ``--batch-size`` that the processes cannot share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner, Result

from conftest import make_model
from steerlab.cli import app
from steerlab.models import model_identity
from steerlab.tuning import (
    ChatDataset,
    FinetuneConfig,
    RepresentationConfig,
    RepresentationTrainer,
    collator_for,
    prepare_model,
    training_arguments,
)
from steerlab.vector import SteeringVector, VectorMetadata

CHATS = [
    [
        {"role": "user", "content": "Tell me about your day."},
        {"role": "assistant", "content": "It was a good day at work."},
    ],
] * 4


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, args, env=env)


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]


def save_tiny(folder: Path) -> Path:
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def trainer_for(tmp_path: Path, token_loss: bool, layers: tuple[int, ...] | None) -> Any:
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    identity = model_identity(model)
    vector = SteeringVector(
        {layer: torch.ones(identity.hidden_size) for layer in range(3)},
        VectorMetadata.for_model(identity, "mean_diff"),
    )
    config = FinetuneConfig(max_steps=1, batch_size=2, rank=4, full_finetune_layers=layers)
    trainable, _, _ = prepare_model(model, config, "tiny")
    representation = RepresentationConfig(layers=(1,), token_loss=token_loss)
    return RepresentationTrainer(
        model=trainable,
        args=training_arguments(config, tmp_path, progress=False),
        train_dataset=ChatDataset(tokenizer, CHATS, 64),
        data_collator=collator_for(tokenizer),
        representation=representation,
        targets=dict(vector.directions),
    )


def trained_names(trainer: Any) -> list[str]:
    return [name for name, p in trainer.model.named_parameters() if p.requires_grad]


@pytest.mark.parametrize("layers", [None, (0, 1, 2)], ids=["lora", "layers"])
def test_representation_only_freezes_what_follows_the_deepest_layer(
    tmp_path: Path, layers: tuple[int, ...] | None
) -> None:
    rep_only = trained_names(trainer_for(tmp_path / "a", token_loss=False, layers=layers))
    assert rep_only and not [n for n in rep_only if "layers.2." in n or "lm_head" in n]
    assert any("layers.1." in n for n in rep_only) and any("layers.0." in n for n in rep_only)
    with_tokens = trained_names(trainer_for(tmp_path / "b", token_loss=True, layers=layers))
    assert any("layers.2." in n for n in with_tokens)  # the cross-entropy reaches them


def test_one_process_keeps_its_own_cosine_mean(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, token_loss=True, layers=None)
    loss = torch.tensor(0.25, requires_grad=True)
    mask = torch.tensor([[True, False], [True, True]])
    assert trainer._share_of_global_mean(loss, mask) is loss


@pytest.fixture
def cli_inputs(tmp_path: Path) -> dict[str, Path]:
    chats = tmp_path / "chats.json"
    chats.write_text(json.dumps(CHATS), encoding="utf-8")
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"": "cpu"}), encoding="utf-8")
    return {"model": save_tiny(tmp_path / "model"), "chats": chats, "map": mapping}


def test_device_map_trains_in_one_process(cli_inputs: dict[str, Path], tmp_path: Path) -> None:
    args = ["finetune", "-m", str(cli_inputs["model"]), "-d", str(cli_inputs["chats"])]
    args += ["-o", str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "2"]
    result = invoke([*args, "--device-map", str(cli_inputs["map"])])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--device-map", "auto"], ("--device-map", "2 processes")),
        (["--batch-size", "3"], ("--batch-size 3", "2 processes", "multiple of 2")),
    ],
)
@pytest.mark.parametrize("command", ["finetune", "tune"])
def test_refused_under_a_launcher(
    cli_inputs: dict[str, Path],
    tmp_path: Path,
    command: str,
    extra: list[str],
    needles: tuple[str, ...],
) -> None:
    out = tmp_path / "run"
    args = [command, "-m", str(cli_inputs["model"]), "-o", str(out), *extra]
    args += ["-d", str(cli_inputs["chats"])] if command == "finetune" else ["-v", "none"]
    for rank in ("0", "1"):  # the same one line on every rank, before anything loads
        result = invoke(args, env={"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank})
        assert_one_line_error(result, *needles)
    assert not out.exists()
