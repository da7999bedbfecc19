"""``steerlab eval`` (:mod:`steerlab.cli.evaluation`), in-process on a tiny llama and its runs.

``sweep`` and ``matrix`` are tested with the library (tests/evaluate/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, invoke, tune_args, tune_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tune_setup(tmp_path_factory.mktemp("cli-eval"))


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
    assert {"tf_accuracy", "tf_auroc", "ab_honest_rate", "perplexity"} <= metrics
    assert {"cosine_statement", "cosine_answer"} <= metrics
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
    line = assert_one_line_error(
        invoke([*base, "--models", str(setup["base"]), "--steered", f"default:{setup['vector']}:x"])
    )
    assert "'x'" in line or "x" in line
    line = assert_one_line_error(
        invoke([*base, "--models", str(setup["base"]), "--suite", "bravery"])
    )
    assert "bravery" in line
    line = assert_one_line_error(
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
    line = assert_one_line_error(invoke([*args, "-o", str(out)]))
    assert "./nomodel: no such model folder" in line and "Hub id" in line
    assert not out.exists()
    steered = ["--steered", f"./nomodel:{setup['vector']}:2"]
    line = assert_one_line_error(
        invoke(["eval", "--models", model, *steered, *args[3:], "-o", str(out)])
    )
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
    line = assert_one_line_error(invoke(["eval", "--models", models, *common, *bad]))
    assert "--split 'train'" in line
