"""``steerlab finetune`` and ``tune`` (:mod:`steerlab.cli.training`), in-process on a tiny llama.

``finetune``'s runs are tested with the library (tests/tuning/test_finetune.py); here: the
training options both commands share, and the deprecated spellings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, invoke, tune_args, tune_setup
from transformers import AutoModelForCausalLM


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
