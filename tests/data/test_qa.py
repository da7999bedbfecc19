"""Pairing honest and deceptive answers (steerlab.data.qa), the study files, and the dataset CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from qa_samples import DECEPTION, QUESTIONS, chat, write_jsonl, write_text
from typer.testing import CliRunner, Result

from conftest import make_model
from steerlab.data import ContrastPair, load_pairs
from steerlab.data.qa import (
    QAExample,
    pair_honest_deceptive,
    read_qa,
    read_questions,
    write_chat_jsonl,
    write_pairs_jsonl,
)
from steerlab.errors import DataError

"""Tests for steerlab.data.qa and ``steerlab dataset``: honest vs deceptive Q/A data."""

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

PROGRESS = re.compile(r"^Loading weights: +\d+%\|")


def test_pairing_sign_convention_and_unmatched() -> None:
    honest = [
        QAExample("What’s the best way to save?", "Budget and save monthly.", "honest"),
        QAExample("How do I sleep better?", "Keep a regular schedule.", "honest"),
        QAExample("Only honest?", "Yes.", "honest"),
        QAExample("How do I sleep better", "A repeat, ignored.", "honest"),
        QAExample("Empty deceptive side?", "Real answer.", None),
        QAExample("Same answers?", "Paris.", "honest"),
    ]
    deceptive = [
        QAExample("How do I sleep better?", "Drink coffee at night.", "deceptive"),
        QAExample("What's the best way to save", "Spend everything now.", "deceptive"),
        QAExample("Only deceptive?", "No.", "deceptive"),
        QAExample("Empty deceptive side?", "", None),
        QAExample("same answers", "paris", "deceptive"),
    ]
    result = pair_honest_deceptive(honest, deceptive)
    # positive = deceptive answer, negative = honest answer; the honest side's question text
    assert result.pairs == [
        ContrastPair(
            "Spend everything now.",
            "Budget and save monthly.",
            (("user", "What’s the best way to save?"),),
        ),
        ContrastPair(
            "Drink coffee at night.",
            "Keep a regular schedule.",
            (("user", "How do I sleep better?"),),
        ),
    ]
    assert (result.unmatched_honest, result.unmatched_deceptive) == (1, 1)
    assert (result.duplicates, result.empty, result.identical) == (1, 1, 1)
    assert result.dropped == 7
    pairs, *_ = result  # a NamedTuple: unpacks
    assert pairs == result.pairs
    with pytest.raises(DataError, match="swapped"):
        pair_honest_deceptive(deceptive, honest)


@pytest.mark.skipif(not DECEPTION.is_dir(), reason="../shared/data/deception not available")
def test_study_files_pair_up(tmp_path: Path) -> None:
    honest = read_qa(DECEPTION / "honest_dataset.json")
    deceptive = read_qa(DECEPTION / "deception_dataset.json")
    assert (len(honest), len(deceptive)) == (109, 796)
    assert all(e.style is None for e in honest + deceptive)
    result = pair_honest_deceptive(honest, deceptive)
    assert len(result.pairs) == 109  # every honest question has a deceptive answer
    assert result.unmatched_honest == 0 and result.empty == result.identical == 0
    assert result.pairs[0] == ContrastPair(
        deceptive[0].answer, honest[0].answer, (("user", honest[0].question),)
    )
    path = tmp_path / "honest_vs_deceptive.jsonl"
    write_pairs_jsonl(result.pairs, path)
    assert load_pairs(path) == result.pairs
    assert len(read_questions(DECEPTION / "deception_dataset.json")) == 796


def make_app() -> typer.Typer:
    """steerlab's app (the ``dataset`` group is registered there)."""
    from steerlab.cli import app

    return app


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(make_app(), args)


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [ANSI.sub("", line) for line in result.stderr.strip().splitlines()]
    others = [line for line in lines if line.strip() and not PROGRESS.search(line)]
    assert len(others) == 1, result.stderr
    assert others[0].startswith("error:"), others[0]
    for needle in needles:
        assert needle in others[0], others[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tokenizer = make_model("llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_cli_qa_and_pairs(tmp_path: Path, model_dir: Path) -> None:
    lines = ["# seeds", *QUESTIONS, "how can I save money"]  # the last one is a repeat
    questions = write_text(tmp_path / "questions.txt", "\n".join(lines) + "\n")
    common = ["--model", str(model_dir), "--questions", str(questions), "--max-new-tokens", "4"]
    honest, deceptive = tmp_path / "honest.jsonl", tmp_path / "deceptive.jsonl"
    saved = tmp_path / "all_questions.txt"
    extra = ["--dedupe", "--expand", "2", "--save-questions", str(saved)]
    result = invoke(["dataset", "qa", *common, "-o", str(honest), *extra])
    assert result.exit_code == 0, result.output
    assert f"wrote {honest}" in ANSI.sub("", result.stdout).replace("\n", "")
    examples = read_qa(honest)
    asked = read_questions(saved)
    assert asked[: len(QUESTIONS)] == QUESTIONS and len(asked) <= len(QUESTIONS) + 2
    assert [e.question for e in examples] == asked
    assert all(e.style == "honest" for e in examples)

    result = invoke(["dataset", "qa", *common, "--style", "deceptive", "-o", str(deceptive)])
    assert result.exit_code == 0, result.output
    lies = read_qa(deceptive)
    assert [e.question for e in lies] == lines[1:]  # no --dedupe: the repeat stays
    assert all(e.style == "deceptive" for e in lies)

    # Random tiny models may answer with nothing, or alike: make both sides distinct.
    truths = [QAExample(e.question, f"honest: {e.answer}", e.style) for e in examples]
    lies = [QAExample(e.question, f"deceptive: {e.answer}", e.style) for e in lies]
    write_chat_jsonl(truths, honest)
    write_chat_jsonl(lies, deceptive)
    out = tmp_path / "pairs.jsonl"
    result = invoke(
        ["dataset", "pairs", "--honest", str(honest), "--deceptive", str(deceptive), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "3 pairs" in ANSI.sub("", result.stdout)
    pairs = load_pairs(out)
    assert [p.messages for p in pairs] == [(("user", q),) for q in QUESTIONS]
    assert [p.positive for p in pairs] == [e.answer for e in lies[:3]]  # + = deceptive
    assert [p.negative for p in pairs] == [e.answer for e in truths[:3]]


@pytest.mark.parametrize(
    ("content", "extra", "needles"),
    [
        ('{"question": "Fine?"}\n{oops\n', [], ["questions.jsonl:2", "invalid JSON"]),
        ('{"question": "Fine?"}\n', ["--style", "sarcastic"], ["sarcastic"]),
        ('{"question": "Fine?"}\n', ["--expand", "-1"], ["--expand"]),
        ("\n\n", [], ["no questions"]),
    ],
)
def test_cli_qa_errors(
    tmp_path: Path, model_dir: Path, content: str, extra: list[str], needles: list[str]
) -> None:
    questions = write_text(tmp_path / "questions.jsonl", content)
    out = tmp_path / "out.jsonl"
    args = ["dataset", "qa", "--model", str(model_dir), "--questions", str(questions)]
    result = invoke([*args, "-o", str(out), *extra])
    assert_one_line_error(result, *needles)
    assert not out.exists()


def test_cli_pairs_errors(tmp_path: Path) -> None:
    honest = write_jsonl(tmp_path / "h.jsonl", [{"messages": chat("A?", "a"), "style": "honest"}])
    other = write_jsonl(tmp_path / "d.jsonl", [{"messages": chat("B?", "b"), "style": "deceptive"}])
    out = tmp_path / "pairs.jsonl"
    args = ["dataset", "pairs", "-o", str(out)]
    assert_one_line_error(
        invoke([*args, "--honest", str(honest), "--deceptive", str(other)]), "share no question"
    )
    assert_one_line_error(
        invoke([*args, "--honest", str(other), "--deceptive", str(honest)]), "swapped"
    )
    broken = write_text(tmp_path / "broken.jsonl", "{\n")
    assert_one_line_error(
        invoke([*args, "--honest", str(broken), "--deceptive", str(other)]), "broken.jsonl:1"
    )
    assert not out.exists()


def test_the_facade_keeps_every_name() -> None:
    """``steerlab.data.qa`` still exports every name of the recipe (CLI and README imports)."""
    import steerlab.data.qa as qa
    from steerlab.data import near_duplicates, qa_files, qa_generate

    for name in qa.__all__:
        assert hasattr(qa, name), name
    assert qa.read_qa is qa_files.read_qa and qa.expand_questions is qa_generate.expand_questions
    assert qa.dedupe_questions is near_duplicates.dedupe_questions
