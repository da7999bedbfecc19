"""`steerlab tune` and `steerlab eval`, in-process on a tiny llama."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner, Result

from conftest import save_tiny_llama
from steerlab.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^Loading weights: +\d+%\|")
FAST = ["--max-steps", "2", "--batch-size", "4", "--lr", "1e-2", "--eval-fraction", "0"]


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(app, args)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ANSI.sub("", line) for line in result.stderr.strip().splitlines()]
    lines = [line for line in lines if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama folder, a vector extracted from it, and a small facts file."""
    root = tmp_path_factory.mktemp("cli-tune")
    save_tiny_llama(root, "base", "honesty.safetensors")
    facts = root / "facts.csv"
    rows = [f"Fact number {i} holds.,{i % 2}" for i in range(40)]
    facts.write_text("statement,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (root / "nodata").mkdir()
    return {
        "root": root,
        "base": root / "base",
        "vector": root / "honesty.safetensors",
        "facts": facts,
        "nodata": root / "nodata",
    }


def tune_args(s: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "tune",
        "--model",
        str(s["base"]),
        "--vector",
        str(s["vector"]),
        "--layers",
        "1-2",
        "--data",
        str(s["facts"]),
        "-o",
        str(out),
        *FAST,
        *extra,
    ]


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
    line = one_line_error(invoke(tune_args(setup, out, "--direction", "sideways")))
    assert "sideways" in line
    line = one_line_error(invoke(tune_args(setup, out, "--layers", "9")))
    assert "9" in line
    line = one_line_error(invoke(tune_args(setup, out, "--layer-weights", "1,2,3")))
    assert "3 weights for 2 layers" in line
    line = one_line_error(invoke(tune_args(setup, out, "--positions", "middle")))
    assert "middle" in line
    missing = tmp_path / "missing.safetensors"
    args = tune_args(setup, out)
    args[args.index(str(setup["vector"]))] = str(missing)
    assert "missing.safetensors" in one_line_error(invoke(args))
    bad = tmp_path / "bad.csv"
    bad.write_text("statement,label\nA fact.,maybe\n", encoding="utf-8")
    args = tune_args(setup, out)
    args[args.index(str(setup["facts"]))] = str(bad)
    assert "bad.csv:2" in one_line_error(invoke(args))
    assert not (out / "merged").exists()


def test_eval_compares_models_and_online_steering(setup: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "honest"
    assert invoke(tune_args(setup, run, "--max-steps", "1")).exit_code == 0
    out = tmp_path / "eval"
    args = [
        "eval",
        "--models",
        f"{setup['base']},{run}",
        "--steered",
        f"{setup['base']}:{setup['vector']}:2",
        "--facts",
        str(setup["facts"]),
        "--data-dir",
        str(setup["nodata"]),
        "--limit",
        "6",
        "--bootstrap",
        "50",
        "-o",
        str(out),
    ]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    for name in ("results.jsonl", "suite.json", "table.csv", "table.md", "bars.png", "bars.svg"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    models = {row["model"] for row in rows}
    assert len(models) == 3
    metrics = {row["metric"] for row in rows}
    assert {"tf_accuracy", "tf_auroc", "ab_honest_rate", "perplexity", "cosine"} <= metrics
    suite = json.loads((out / "suite.json").read_text())
    # The cosine layers default to the tuned run's layers.
    assert suite["settings"]["layers"] == [1, 2]
    assert "TruthfulQA: skipped" in result.stdout
    # A second run resumes: nothing changes.
    before = (out / "results.jsonl").read_bytes()
    again = invoke(args)
    assert again.exit_code == 0, again.output
    assert (out / "results.jsonl").read_bytes() == before


def test_eval_errors_are_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    base = ["eval", "-o", str(tmp_path / "e"), "--data-dir", str(setup["nodata"])]
    line = one_line_error(
        invoke([*base, "--models", str(setup["base"]), "--steered", f"default:{setup['vector']}:x"])
    )
    assert "'x'" in line or "x" in line
    line = one_line_error(invoke([*base, "--models", str(setup["base"]), "--suite", "bravery"]))
    assert "bravery" in line
    line = one_line_error(
        invoke([*base, "--models", str(setup["base"]), "--steered", "default:nothere.st:2"])
    )
    assert "nothere.st" in line


@pytest.mark.parametrize("first", ["default", "base"])
def test_eval_checks_every_model_before_creating_anything(
    setup: dict[str, Path], tmp_path: Path, first: str
) -> None:
    out = tmp_path / "never"
    model = "default" if first == "default" else str(setup["base"])
    args = ["eval", "--models", f"{model},./nomodel", "--data-dir", str(setup["nodata"])]
    line = one_line_error(invoke([*args, "-o", str(out)]))
    assert "./nomodel: no such model folder" in line and "Hub id" in line
    assert not out.exists()
    steered = ["--steered", f"./nomodel:{setup['vector']}:2"]
    line = one_line_error(invoke(["eval", "--models", model, *steered, *args[3:], "-o", str(out)]))
    assert "./nomodel: no such model folder" in line
    assert not out.exists()


def test_eval_scores_a_users_facts_file_whole_unless_a_run_was_tuned_on_it(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    from steerlab.data.evalsets import load_statements
    from steerlab.data.honesty import held_out

    statements = load_statements(setup["facts"])
    n_held = sum(held_out(s.text) for s in statements)
    assert len(statements) == 40 and 0 < n_held < 40
    common = ["--facts", str(setup["facts"]), "--data-dir", str(setup["nodata"])]
    common += ["--bootstrap", "10", "--ab", "builtin:honesty_ab", "--limit", "200"]

    def n_scored(out: Path) -> int:
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        return next(r["n"] for r in rows if r["metric"] == "tf_accuracy")

    own = invoke(["eval", "--models", str(setup["base"]), *common, "-o", str(tmp_path / "own")])
    assert own.exit_code == 0, own.output
    assert n_scored(tmp_path / "own") == 40
    assert "split all (no evaluated model was tuned on it), n = 40" in own.stdout
    assert "(all, n=40)" in own.stdout  # in the table too

    run = tmp_path / "run"
    assert invoke(tune_args(setup, run, "--max-steps", "1")).exit_code == 0
    record = json.loads((run / "steerlab_finetune.json").read_text())
    assert record["data_source"]["source"] == str(setup["facts"].resolve())
    models = f"{setup['base']},{run}"
    tuned = invoke(["eval", "--models", models, *common, "-o", str(tmp_path / "tuned")])
    assert tuned.exit_code == 0, tuned.output
    assert n_scored(tmp_path / "tuned") == n_held
    assert f"split heldout ({run} was tuned on it), n = {n_held}" in tuned.stdout
    forced = ["--split", "all", "-o", str(tmp_path / "forced")]
    assert invoke(["eval", "--models", models, *common, *forced]).exit_code == 0
    assert n_scored(tmp_path / "forced") == 40
    bad = ["--split", "train", "-o", str(tmp_path / "bad")]
    line = one_line_error(invoke(["eval", "--models", models, *common, *bad]))
    assert "--split 'train'" in line
