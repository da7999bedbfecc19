"""Running the honesty suite on tiny models: files, resumption, the named suite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from suite_helpers import entry, make_suite, vector_for

import steerlab.evaluate.suite_run as suite_run
from conftest import make_model
from steerlab.errors import SpecError
from steerlab.evaluate import SuiteResult, evaluate_models
from steerlab.evaluate.suite_metrics import SuiteRunner
from steerlab.evaluate.suite_result import CONFIG, RESULTS


@pytest.fixture
def small():
    return make_model("llama", layers=3, hidden=32)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(autouse=True)
def fixed_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    """suite.json records the git revision, which other work may move between two runs."""
    monkeypatch.setattr(suite_run, "git_revision", lambda: "0" * 40)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    folder = tmp_path / "tiny_model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_files_resume_skips_models_and_refuses_mismatch(small, tmp_path, model_dir):
    model, tokenizer = small
    suite = make_suite(tmp_path / "data", vector=vector_for(model))
    out = tmp_path / "out"
    models = [f"tuned={model_dir}", entry("memory", model, tokenizer)]
    first = evaluate_models(models, out, suite, progress=False)
    files = _files(out)
    assert {RESULTS, CONFIG, "table.csv", "table.md", "bars.png", "bars.svg"} <= set(files)
    lines = files[RESULTS].decode().splitlines()
    per_model = 7 + 2 * 4  # cosine_statement / cosine_answer: mean and 3 layers each
    assert len(lines) == 2 * per_model
    assert [json.loads(line)["model"] for line in lines] == ["tuned"] * per_model + [
        "memory"
    ] * per_model
    config = json.loads(files[CONFIG])
    assert config["settings"]["seed"] == 0 and config["provenance"]["library_version"]
    assert [d["kind"] for d in config["data"]] == ["facts", "truthfulqa", "ab", "text", "cosine"]
    assert all(len(d["sha256"]) == 64 for d in config["data"])
    assert config["data"][-1]["layers"] == [0, 1, 2]
    assert config["data"][-1]["answer_positions"] == "answer"
    assert config["models"][0]["source"] == str(model_dir)
    table = files["table.md"].decode()
    assert table.splitlines()[0].startswith("| model | tf_accuracy[facts] |")
    assert "| tuned |" in table and "| memory |" in table

    # A resumed run skips both models: the model folder is gone, so loading would fail.
    shutil.rmtree(model_dir)
    again = evaluate_models(models, out, suite, progress=False)
    assert _files(out) == files
    assert again.rows == first.rows and again.models == first.models

    loaded = SuiteResult.load(out)
    assert loaded.rows == first.rows and loaded.models == ["tuned", "memory"]
    assert loaded.table_markdown() == table
    terminal = loaded.table()  # transposed: a row per metric, a column per model
    assert terminal.row_count == len(loaded.metrics)
    assert [c.header for c in terminal.columns] == ["metric", "data", "tuned", "memory"]

    with pytest.raises(SpecError, match="other settings"):
        evaluate_models(models, out, make_suite(tmp_path / "data", seed=1), progress=False)
    with pytest.raises(SpecError, match="set up otherwise"):
        evaluate_models(
            [f"tuned={tmp_path}", entry("memory", model, tokenizer)], out, suite, progress=False
        )
    fresh = evaluate_models(
        [entry("memory", model, tokenizer)],
        out,
        make_suite(tmp_path / "data", seed=1),
        progress=False,
        resume=False,
    )
    assert fresh.models == ["memory"]
    assert len((out / RESULTS).read_text().splitlines()) == 7


def test_interrupted_run_resumes_to_identical_files(small, tmp_path, monkeypatch):
    model, tokenizer = small
    other, other_tokenizer = make_model("llama", layers=3, hidden=32, seed=1)
    suite = make_suite(tmp_path / "data", truthfulqa=None, text=None)
    models = [entry("a", model, tokenizer), entry("b", other, other_tokenizer)]
    full = tmp_path / "full"
    evaluate_models(models, full, suite, progress=False)

    original = SuiteRunner.run
    calls = []

    def interrupted(self, data):
        calls.append(self.label)
        if self.label == "b":
            raise KeyboardInterrupt
        return original(self, data)

    part = tmp_path / "part"
    monkeypatch.setattr(SuiteRunner, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_models(models, part, suite, progress=False)
    assert len((part / RESULTS).read_text().splitlines()) == 4
    calls.clear()

    def counted(self, data):
        calls.append(self.label)
        return original(self, data)

    monkeypatch.setattr(SuiteRunner, "run", counted)
    evaluate_models(models, part, suite, progress=False)
    assert calls == ["b"]
    assert _files(part) == _files(full)


def test_named_suite_uses_builtin_sets_without_a_data_folder(small, tmp_path, monkeypatch):
    model, tokenizer = small
    monkeypatch.delenv("STEERLAB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    result = evaluate_models(
        [entry("m", model, tokenizer)], tmp_path / "out", "honesty", progress=False
    )
    assert result.metrics == [
        ("tf_accuracy", "facts"),
        ("tf_auroc", "facts"),
        ("ab_honest_rate", "honesty_ab"),
        ("ab_honest_prob", "honesty_ab"),
        ("perplexity", "general_text"),
    ]
    facts = result.value("m", "tf_accuracy", "facts")
    assert facts.n == 120  # "auto": no model here was tuned on builtin:facts, all scored
    assert all(r.low <= r.value <= r.high for r in result.rows)
    with pytest.raises(SpecError, match="unknown suite"):
        evaluate_models([entry("m", model, tokenizer)], None, "nope", progress=False)
