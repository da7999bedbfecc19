"""``steerlab finetune`` and ``tune`` (:mod:`steerlab.cli.training`), in-process on a tiny llama.

``finetune``'s runs are tested with the library (tests/tuning/test_finetune.py); here: the
training options both commands share, and the deprecated spellings.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from cli_helpers import assert_one_line_error, invoke, tune_args, tune_setup
from transformers import AutoModelForCausalLM

from steerlab.cli import app
from steerlab.cli.common import TrainingOptions
from steerlab.errors import SteerlabError
from steerlab.tuning import FinetuneConfig

CHAT = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello there."}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tune_setup(tmp_path_factory.mktemp("cli-tune"))


def test_tune_writes_a_plain_checkpoint_and_logs_both_losses(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "honest"
    result = invoke(tune_args(setup, out, "--rep-weight", "2", "--rank", "4"))
    assert result.exit_code == 0, result.output
    assert "cos_sim" in result.stdout and "ce_loss" in result.stdout
    assert "held out for evaluation" in result.stdout
    record = json.loads((out / "steerlab_finetune.json").read_text())
    assert record["kind"] == "represent"
    assert record["representation"]["layers"] == [1, 2]
    assert record["representation"]["rep_weight"] == 2.0
    assert record["representation"]["direction"] == "toward"
    rows = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert all({"ce_loss", "rep_loss", "cos_sim"} <= set(row) for row in rows if "loss" in row)
    # The merged checkpoint loads in plain transformers.
    plain = AutoModelForCausalLM.from_pretrained(out / "merged")
    logits = plain(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()


def test_tune_away_token_only_and_layer_mode(setup: dict[str, Path], tmp_path: Path) -> None:
    away = invoke(tune_args(setup, tmp_path / "away", "--direction", "away", "--max-steps", "1"))
    assert away.exit_code == 0, away.output
    record = json.loads((tmp_path / "away" / "steerlab_finetune.json").read_text())
    assert record["representation"]["direction"] == "away"
    token = invoke(tune_args(setup, tmp_path / "token", "--rep-weight", "0", "--max-steps", "1"))
    assert token.exit_code == 0, token.output
    layers = invoke(tune_args(setup, tmp_path / "layers", "--train-layers", "1-2", "--rep-only"))
    assert layers.exit_code == 0, layers.output
    record = json.loads((tmp_path / "layers" / "steerlab_finetune.json").read_text())
    assert record["trained_layers"] == [1, 2]
    assert record["representation"]["token_loss"] is False
    assert (tmp_path / "layers" / "config.json").is_file()


def test_tune_errors_are_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bad"
    line = assert_one_line_error(invoke(tune_args(setup, out, "--direction", "sideways")))
    assert "sideways" in line
    line = assert_one_line_error(invoke(tune_args(setup, out, "--rep-layers", "9")))
    assert "9" in line
    line = assert_one_line_error(invoke(tune_args(setup, out, "--layer-weights", "1,2,3")))
    assert "3 weights for 2 layers" in line
    line = assert_one_line_error(invoke(tune_args(setup, out, "--positions", "middle")))
    assert "middle" in line
    missing = tmp_path / "missing.safetensors"
    args = tune_args(setup, out)
    args[args.index(str(setup["vector"]))] = str(missing)
    assert "missing.safetensors" in assert_one_line_error(invoke(args))
    bad = tmp_path / "bad.csv"
    bad.write_text("statement,label\nA fact.,maybe\n", encoding="utf-8")
    args = tune_args(setup, out)
    args[args.index(str(setup["facts"]))] = str(bad)
    assert "bad.csv:2" in assert_one_line_error(invoke(args))
    assert not (out / "merged").exists()


# -- one set of training options, one meaning per flag ---------------------------------------


def _params(command: str) -> dict[str, Any]:
    """The click parameters of ``steerlab COMMAND`` by name (typer may vendor its own click)."""
    group: Any = typer.main.get_command(app)
    return {param.name: param for param in group.commands[command].params if param.name}


def test_finetune_and_tune_share_the_training_options() -> None:
    finetune, tune = _params("finetune"), _params("tune")
    for field in dataclasses.fields(TrainingOptions):
        a, b = finetune[field.name], tune[field.name]
        assert (a.opts, a.secondary_opts, a.default) == (b.opts, b.secondary_opts, b.default)
        assert getattr(a, "help", None) == getattr(b, "help", None)
        assert a.default == field.default
    assert finetune["train_layers"].opts == ["--train-layers"]
    assert tune["rep_layers"].opts == ["--rep-layers"]
    assert "rep_layers" not in finetune


def test_training_defaults_are_finetune_configs() -> None:
    config = TrainingOptions().finetune_config(merge=False)
    assert config == FinetuneConfig()
    assert TrainingOptions().eval_fraction == FinetuneConfig().eval_fraction


def test_training_options_build_the_config() -> None:
    options = TrainingOptions(
        rank=4,
        lr=1e-3,
        lr_scheduler="constant",
        gradient_accumulation=2,
        eval_fraction=0.2,
        early_stopping=3,
    )
    config = options.finetune_config(merge=True, full_finetune_layers=(1, 2))
    assert (config.rank, config.learning_rate, config.gradient_accumulation) == (4, 1e-3, 2)
    assert config.lr_scheduler == "constant"
    assert (config.eval_fraction, config.early_stopping_patience) == (0.2, 3)
    assert config.merge and config.full_finetune_layers == (1, 2)


@pytest.mark.parametrize("command", ["finetune", "tune"])
def test_deprecated_layers_flag_is_hidden(command: str) -> None:
    assert _params(command)["layers"].hidden
    result = invoke([command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--train-layers" in result.stdout
    assert " --layers " not in result.stdout


def test_tune_layers_as_in_the_readme_means_rep_layers(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    args = tune_args(setup, tmp_path / "old", "--max-steps", "1")
    args[args.index("--rep-layers")] = "--layers"
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "note: 'tune --layers' is deprecated; use --rep-layers" in result.stdout
    record = json.loads((tmp_path / "old" / "steerlab_finetune.json").read_text())
    assert record["representation"]["layers"] == [1, 2]
    assert not record["trained_layers"]  # LoRA: --layers never meant layers to train here


def test_finetune_layers_means_train_layers(setup: dict[str, Path], tmp_path: Path) -> None:
    chats = tmp_path / "chats.json"
    chats.write_text(json.dumps([CHAT] * 4), encoding="utf-8")
    base = ["finetune", "-m", str(setup["base"]), "-d", str(chats), "--max-steps", "1"]
    old = invoke([*base, "--layers", "1-2", "-o", str(tmp_path / "old")])
    assert old.exit_code == 0, old.output
    assert "note: 'finetune --layers' is deprecated; use --train-layers" in old.stdout
    new = invoke([*base, "--train-layers", "1-2", "-o", str(tmp_path / "new")])
    assert new.exit_code == 0, new.output
    assert "deprecated" not in new.stdout
    for run in ("old", "new"):
        record = json.loads((tmp_path / run / "steerlab_finetune.json").read_text())
        assert record["trained_layers"] == [1, 2]


@pytest.mark.parametrize(
    ("command", "new"), [("finetune", "--train-layers"), ("tune", "--rep-layers")]
)
def test_old_and_new_spelling_together_is_one_line(
    setup: dict[str, Path], tmp_path: Path, command: str, new: str
) -> None:
    out = tmp_path / "run"
    if command == "tune":
        args = tune_args(setup, out, "--layers", "1")
    else:
        args = ["finetune", "-m", str(setup["base"]), "-d", "x.json", "-o", str(out)]
        args += [new, "1", "--layers", "1"]
    line = assert_one_line_error(invoke(args), "--layers", new, "deprecated")
    assert "give" in line
    assert not out.exists()


def test_unknown_lr_scheduler_is_one_line() -> None:
    with pytest.raises(SteerlabError, match="lr_scheduler"):
        TrainingOptions(lr_scheduler="sawtooth").finetune_config(merge=False)
