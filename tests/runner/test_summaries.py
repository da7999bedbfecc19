"""Stage summaries (:func:`steerlab.runner.summaries.summarize`) of genuine outputs: each stage's
command is run through the CLI on a tiny random llama, into a folder laid out as the runner lays
out a stage, and its summary is checked against what the command wrote."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import make_model, save_tiny_llama
from steerlab.cli import app
from steerlab.cli.generation import generate as generate_command
from steerlab.runner.summaries import KINDS, summarize

QUESTIONS = "How are you?\nTell me about your day.\n"
FAST = ["--max-steps", "2", "--batch-size", "4", "--lr", "1e-2", "--eval-fraction", "0"]


def run(*args: Any) -> str:
    """``steerlab ARGS`` in-process; its stdout (the command must succeed)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def checked(kind: str, stage: Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stage's summary, checked against the contract: strict JSON, known parts only, every
    plot and file path relative to the stage folder and there."""
    summary = summarize(kind, stage, settings or {})
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert set(summary) <= {
        "headline",
        "numbers",
        "tables",
        "plots",
        "generations",
        "text",
        "files",
    }
    for part in ("plots", "files"):
        for entry in summary.get(part, []):
            assert not Path(entry["path"]).is_absolute()
            assert (stage / entry["path"]).exists(), entry
    for plot in summary.get("plots", []):
        assert plot["path"].endswith(".svg")
    for entry in summary.get("numbers", []):
        assert {"label", "value"} <= set(entry)
    for entry in summary.get("tables", []):
        assert all(len(row) == len(entry["columns"]) for row in entry["rows"]), entry["title"]
    return summary


def numbers(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["label"]: entry for entry in summary["numbers"]}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama (``model``), a second one for diffs (``tuned``), a vector extracted in the
    ``extract`` stage folder, and small data files."""
    folder = tmp_path_factory.mktemp("summaries")
    save_tiny_llama(folder, "model", "builtin.safetensors")
    tuned, tokenizer = make_model("llama", layers=3, hidden=32, seed=1)
    tuned.save_pretrained(folder / "tuned")
    tokenizer.save_pretrained(folder / "tuned")
    (folder / "questions.txt").write_text(QUESTIONS, encoding="utf-8")
    vector = stage(folder, "extract") / "vector.safetensors"
    run("extract", "--model", folder / "model", "--pairs", "builtin:happy_sad", "--limit", 6,
        "--method", "mean_diff", "-o", vector)  # fmt: skip
    return folder


def stage(root: Path, name: str) -> Path:
    folder = root / "stages" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def vector_of(root: Path) -> Path:
    return root / "stages" / "extract" / "vector.safetensors"


def test_unknown_kind_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown stage kind 'nope'"):
        summarize("nope", tmp_path, {})


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_missing_outputs_leave_parts_out(kind: str, tmp_path: Path) -> None:
    assert checked(kind, tmp_path) == {}
    (tmp_path / "out").mkdir()
    assert checked(kind, tmp_path) == {}


def test_extract_and_diff(root: Path) -> None:
    summary = checked("extract", root / "stages" / "extract")
    assert summary["headline"].startswith("mean_diff vector from 6 examples")
    assert numbers(summary)["layers"]["value"] == 3
    assert numbers(summary)["examples"]["value"] == 6
    norms = summary["tables"][0]
    assert norms["columns"] == ["layer", "vector norm", "activation norm"]
    assert [row[0] for row in norms["rows"]] == [0, 1, 2]
    assert all(row[1] > 0 and row[2] > 0 for row in norms["rows"])
    assert summary["files"][0]["path"] == "vector.safetensors"

    diff = stage(root, "diff")
    run("diff", "--tuned", root / "tuned", "--base", root / "model",
        "--prompts", root / "questions.txt", "-o", diff / "vector.safetensors")  # fmt: skip
    summary = checked("diff", diff)
    assert summary["headline"].startswith("model_diff vector from 2 examples")


def test_export_and_import(root: Path) -> None:
    export = stage(root, "export")
    run("export", "gguf", vector_of(root), "-o", export / "vector.gguf", "--coefficient", 0.1)
    summary = checked("export", export)
    assert "layers 1,2" in summary["headline"]  # llama.cpp never steers layer 0
    assert numbers(summary)["coefficient"] == {
        "label": "coefficient",
        "value": 0.1,
        "unit": "norm scale",
    }
    assert summary["files"][0]["path"] == "vector.gguf" and summary["files"][0]["bytes"] > 0
    assert [row[0] for row in summary["tables"][0]["rows"]] == [1, 2]

    imported = stage(root, "import")
    run("import", "gguf", export / "vector.gguf", "--model", root / "model",
        "-o", imported / "vector.safetensors")  # fmt: skip
    summary = checked("import", imported)
    assert numbers(summary)["layers"]["value"] == 2


def test_compare_names_the_vectors_by_their_stages(root: Path) -> None:
    other = stage(root, "other") / "vector.safetensors"
    run("extract", "-m", root / "model", "-p", "builtin:honesty", "--limit", 6, "-o", other)
    compare = stage(root, "compare")
    run("compare", vector_of(root), other, "-o", compare / "out")
    summary = checked("compare", compare, {"vectors": ["mood", "honesty"]})
    assert summary["headline"].startswith("mood vs honesty: mean cosine")
    cosine = summary["tables"][0]
    assert cosine["columns"] == ["layer", "mood vs honesty"]
    assert len(cosine["rows"]) == 3 and all(-1 <= row[1] <= 1 for row in cosine["rows"])
    mean = numbers(summary)["mean cosine mood vs honesty"]["value"]
    assert mean == pytest.approx(sum(row[1] for row in cosine["rows"]) / 3)
    assert summary["plots"] == [{"title": "cosine similarity per layer", "path": "out/cosine.svg"}]
    # Without stage names in the settings, the file stems (as `steerlab compare` names them).
    assert checked("compare", compare)["tables"][0]["columns"] == ["layer", "vector vs vector'"]


def test_generate_side_by_side(root: Path) -> None:
    folder = stage(root, "generate")
    target = folder / "generations.jsonl"
    args = ["generate", "How are you?", "Hi", "-m", root / "model", "-v", vector_of(root),
            "--coefficients=-0.1,0,0.1", "--max-new-tokens", 3]  # fmt: skip
    if "output" in inspect.signature(generate_command).parameters:
        run(*args, "--output", target)
    else:  # the JSON lines `generate --json` prints are the rows `--output` writes
        lines = run(*args, "--json").splitlines()
        target.write_text("".join(line + "\n" for line in lines if line.startswith("{")))
    summary = checked("generate", folder)
    assert summary["headline"] == "2 prompt(s) x 3 coefficient(s) (-0.1, +0, +0.1)"
    assert [(g["prompt"], g["column"]) for g in summary["generations"][:3]] == [
        ("How are you?", "-0.1"),
        ("How are you?", "+0"),
        ("How are you?", "+0.1"),
    ]
    assert all(isinstance(g["text"], str) for g in summary["generations"])


def test_sweep_fits_with_intervals(root: Path) -> None:
    ab = root / "ab.json"
    ab.write_text(json.dumps([
        {"question": f"Q{i}?\n\nChoices:\n (A) yes\n (B) no", "answer_matching_behavior": "(A)",
         "answer_not_matching_behavior": "(B)"} for i in range(4)
    ]))  # fmt: skip
    mmlu = root / "maths_test.csv"
    mmlu.write_text("What is 1+1?,2,3,4,5,A\nWhat is 2+2?,1,4,3,2,B\nWhat is 3+3?,5,7,6,1,C\n")
    folder = stage(root, "sweep")
    run("sweep", "-m", root / "model", "-v", vector_of(root), "--behavior", f"caa:{ab}",
        "--helpfulness", f"mmlu:{mmlu}", "--coefficients=-2:2:5", "-o", folder / "out")  # fmt: skip
    summary = checked("sweep", folder)
    fit = json.loads((folder / "out" / "fit.json").read_text())
    slope = numbers(summary)["Δλ (tanh fit)"]
    assert slope["value"] == pytest.approx(fit["behavior"]["delta_lambda"])
    assert slope["low"] < slope["value"] < slope["high"]
    assert numbers(summary)["λσβ (parabolic bound)"]["value"] == pytest.approx(
        fit["helpfulness"]["lambda_sigma_beta"]
    )
    estimate = numbers(summary)["Δλ (empirical, ab)"]
    assert estimate["low"] <= estimate["value"] <= estimate["high"]
    table = summary["tables"][0]
    assert table["columns"][0] == "coefficient" and "ab · B_likelihood" in table["columns"]
    assert [row[0] for row in table["rows"]] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert [p["path"] for p in summary["plots"]] == [
        "out/behavior.svg",
        "out/helpfulness.svg",
        "out/tradeoff.svg",
    ]
    assert summary["text"][0].startswith("sweep: 5 coefficients")
    assert any(line.startswith("behaviour fit") for line in summary["text"])


def test_matrix_rates_and_examples(root: Path) -> None:
    folder = stage(root, "matrix")
    run("matrix", "-m", root / "model", "--vectors", f"mine={vector_of(root)}",
        "--prompts", root / "questions.txt", "-o", folder / "out", "--normalized-coefficients",
        0.1, "--raw-coefficients", 1, "--max-new-tokens", 3)  # fmt: skip
    summary = checked("matrix", folder)
    assert summary["headline"].startswith("steering matrix: 11 conditions x 2 prompts")
    assert "answer_change" in summary["headline"]
    rates = summary["tables"][0]
    assert rates["columns"][:2] == ["vector", "operator"] and len(rates["rows"]) == 11
    assert numbers(summary)["unsteered rate"]["value"] == 0.0
    assert summary["plots"] == [{"title": "rate per condition", "path": "out/rates.svg"}]
    columns = [g["column"] for g in summary["generations"]]
    assert columns[0] == "unsteered" and len(set(columns)) == 2


def test_finetune_and_tune_runs(root: Path) -> None:
    chats = root / "chats.jsonl"
    chats.write_text("".join(
        json.dumps([{"role": "user", "content": f"Hi {i}"},
                    {"role": "assistant", "content": "I am happy today."}]) + "\n"
        for i in range(8)
    ))  # fmt: skip
    folder = stage(root, "finetune")
    run("finetune", "-m", root / "model", "--data", chats, "-o", folder / "out", *FAST)
    summary = checked("finetune", folder)
    assert summary["headline"].startswith("fine-tune of ")
    assert summary["headline"].endswith("2 steps, complete")
    assert numbers(summary)["steps"]["value"] == 2
    assert {"loss at step 1", "loss at step 2"} <= set(numbers(summary))
    assert summary["tables"][0]["columns"][:2] == ["step", "loss"]

    facts = root / "facts.csv"
    facts.write_text("statement,label\n" + "".join(f"Fact {i} holds.,{i % 2}\n" for i in range(40)))
    folder = stage(root, "tune")
    run("tune", "-m", root / "model", "-v", vector_of(root), "--rep-layers", "1-2",
        "--data", facts, "-o", folder / "out", *FAST)  # fmt: skip
    summary = checked("tune", folder)
    assert "cosine loss at layers 1,2" in summary["headline"]
    found = numbers(summary)
    for key in ("ce_loss", "rep_loss", "cos_sim"):
        assert f"{key} at step 1" in found and f"{key} at step 2" in found
    assert any(line.startswith("cos_sim: step 1:") for line in summary["text"])
    assert "out/merged" in [f["path"] for f in summary["files"]]


def test_eval_suite_with_intervals_and_nan(root: Path) -> None:
    facts = root / "eval_facts.csv"
    facts.write_text("statement,label\n" + "".join(f"Fact {i} holds.,{i % 2}\n" for i in range(12)))
    (root / "nodata").mkdir(exist_ok=True)
    folder = stage(root, "eval")
    run("eval", "--models", root / "model", "--steered", f"{root / 'model'}:{vector_of(root)}:2",
        "--facts", facts, "--data-dir", root / "nodata", "--limit", 6, "--bootstrap", 50,
        "-o", folder / "out")  # fmt: skip
    summary = checked("eval", folder)
    assert summary["headline"].startswith("honesty suite: 2 model(s)")
    accuracy = numbers(summary)["model: tf_accuracy [eval_facts]"]
    assert accuracy["low"] <= accuracy["value"] <= accuracy["high"]
    assert not any(" L0]" in label for label in numbers(summary))  # per-layer rows: table only
    table = summary["tables"][0]
    assert table["columns"][0] == "model" and len(table["rows"]) == 2
    assert summary["plots"] == [{"title": "honesty suite", "path": "out/bars.svg"}]
    # An undefined value (NaN, written as null) comes back as None.
    results = folder / "out" / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    rows[0].update(value=None, low=None, high=None)
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    first = f"{rows[0]['model']}: {rows[0]['metric']} [{rows[0]['dataset']}]"
    assert numbers(checked("eval", folder))[first]["value"] is None


def test_fold_record(root: Path) -> None:
    folder = stage(root, "fold")
    run("fold", "-m", root / "model", "-v", vector_of(root), "--coefficient", 0.2,
        "--layers", "1-2", "-o", folder / "out")  # fmt: skip
    summary = checked("fold", folder)
    assert (
        summary["headline"] == "folded add 0.2 (norm scale) at layers 1,2 into a plain checkpoint"
    )
    assert numbers(summary)["coefficient"]["value"] == 0.2
    assert ["operator", "add"] in summary["tables"][0]["rows"]
    assert [row[0] for row in summary["tables"][1]["rows"]] == [1, 2]


def test_calibrate_recommendation(root: Path) -> None:
    texts = root / "texts.txt"
    texts.write_text("The weather is lovely.\nI went to work today.\nThe fox jumps.\n")
    folder = stage(root, "calibrate")
    run("calibrate", "-m", root / "model", "-v", vector_of(root),
        "--behavior", "pairs:builtin:happy_sad", "--text", texts, "-o", folder / "out")  # fmt: skip
    summary = checked("calibrate", folder)
    record = json.loads((folder / "out" / "calibration.json").read_text())["recommendation"]
    found = numbers(summary)
    assert found["recommended positive coefficient"]["value"] == record["positive"]
    assert found["recommended negative coefficient"]["unit"] == "norm scale"
    sweep = summary["tables"][0]
    assert 0.0 in [row[0] for row in sweep["rows"]]
    assert summary["plots"][0]["path"] == "out/calibration.svg"
