"""Tests for steerlab.data.qa and ``steerlab dataset``: honest vs deceptive Q/A data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

import steerlab.data.qa as qa
from conftest import make_model, make_tokenizer
from steerlab.cli_dataset import register
from steerlab.data import ContrastPair, load_pairs
from steerlab.data.qa import (
    DECEPTIVE_SYSTEM,
    HONEST_SYSTEM,
    QAExample,
    answer_questions,
    clean_answer,
    dedupe_questions,
    expand_questions,
    normalize_question,
    pair_honest_deceptive,
    parse_question,
    qa_prompts,
    question_similarity,
    read_qa,
    read_questions,
    write_chat_jsonl,
    write_pairs_jsonl,
)
from steerlab.errors import DataError, SpecError
from steerlab.generate import Generation, render_prompts

ROOT = Path(__file__).resolve().parents[2]
# The shared data lie beside the project (../shared); a device copy may hold them inside it.
SHARED_DATA = next(
    (d for d in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if d.is_dir()),
    ROOT.parent / "shared" / "data",
)
DECEPTION = SHARED_DATA / "deception"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^Loading weights: +\d+%\|")
QUESTIONS = ["How can I save money?", "What is the capital of France?", "How do I sleep better?"]


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def chat(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


# -- reading questions ---------------------------------------------------------------------------


def test_read_questions_text_skips_blanks_and_comments(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "q.txt",
        "# seed questions\n\nHow can I save money?\n  # indented comment\n"
        "  What is the capital of France?  \n\n",
    )
    assert read_questions(path) == QUESTIONS[:2]
    assert read_questions(path, limit=1) == QUESTIONS[:1]


def test_read_questions_jsonl_and_json_formats(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "q.jsonl", [{"question": q} for q in QUESTIONS])
    assert read_questions(jsonl) == QUESTIONS
    # The study's format: a JSON list of chats; the user message is the question.
    study = write_text(tmp_path / "study.json", json.dumps([chat(q, "A.") for q in QUESTIONS]))
    assert read_questions(study) == QUESTIONS
    # Our own chat JSONL (a previous `dataset qa` output) and a JSON list of objects / strings.
    ours = write_jsonl(tmp_path / "ours.jsonl", [{"messages": chat(q, "A.")} for q in QUESTIONS])
    assert read_questions(ours) == QUESTIONS
    objects = write_text(tmp_path / "objs.json", json.dumps([{"question": q} for q in QUESTIONS]))
    assert read_questions(objects) == QUESTIONS
    strings = write_text(tmp_path / "strings", json.dumps(QUESTIONS))  # no suffix: sniffed
    assert read_questions(strings) == QUESTIONS


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("bad.jsonl", '{"question": "Fine?"}\n{"question": \n', "bad.jsonl:2: invalid JSON"),
        ("missing.jsonl", '{"question": "Fine?"}\n\n{"query": "x"}\n', "missing.jsonl:3:"),
        ("type.jsonl", '{"question": 3}\n', "type.jsonl:1: field 'question' must be a string"),
        ("blank.jsonl", '{"question": "  "}\n', "blank.jsonl:1: empty question"),
        ("chat.json", json.dumps([[{"role": "assistant", "content": "x"}]]), "item 0"),
        ("role.json", json.dumps([[{"role": "robot", "content": "x"}]]), "item 0"),
        ("object.json", json.dumps({"question": "x"}), "expected a JSON list"),
        ("empty.txt", "# only a comment\n\n", "no questions"),
    ],
)
def test_read_questions_errors_name_file_and_line(
    tmp_path: Path, name: str, text: str, needle: str
) -> None:
    path = write_text(tmp_path / name, text)
    with pytest.raises(DataError) as info:
        read_questions(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path) in message
    assert needle in message


def test_read_questions_missing_file_and_bad_limit(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_questions(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="limit"):
        read_questions(write_text(tmp_path / "q.txt", "Why?\n"), limit=0)
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9?\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_questions(tmp_path / "latin1.txt")


# -- near-duplicates -----------------------------------------------------------------------------


def test_normalize_question() -> None:
    assert normalize_question("  What’s the BEST   way?! ") == "whats the best way"
    assert normalize_question("What's the best way") == "whats the best way"


def test_dedupe_removes_near_duplicates_and_keeps_distinct() -> None:
    questions = [
        "How can I improve my writing skills?",
        "What is the capital of France?",
        "how can i improve my writing skills",  # exact after normalisation
        "How can I improve my writing skill?",  # one letter off
        "What’s the best way to learn a new language?",
        "What's the best way to learn a new language",
        "How do I get better at math?",
        "How do I get better at chess?",  # distinct question, similar wording
        "Why is the sky blue?",
        "!!!",  # nothing left after normalisation
    ]
    kept = dedupe_questions(questions)
    assert kept == [
        "How can I improve my writing skills?",
        "What is the capital of France?",
        "What’s the best way to learn a new language?",
        "How do I get better at math?",
        "How do I get better at chess?",
        "Why is the sky blue?",
    ]
    assert dedupe_questions(kept) == kept  # idempotent
    # threshold 1.0 removes only normalised repeats
    strict = dedupe_questions(questions, threshold=1.0)
    assert "How can I improve my writing skill?" in strict
    assert "how can i improve my writing skills" not in strict
    # `against` drops anything near questions kept elsewhere
    assert dedupe_questions(["Why is the sky blue", "Why?"], against=["why is the sky blue?"]) == [
        "Why?"
    ]
    with pytest.raises(SpecError):
        dedupe_questions(questions, threshold=0.0)


def test_question_similarity_is_symmetric_trigram_jaccard() -> None:
    a, b = "How do I get better at math?", "How do I get better at chess?"
    assert question_similarity(a, b) == pytest.approx(question_similarity(b, a))
    assert 0.0 < question_similarity(a, b) < 0.85
    assert question_similarity(a, a.upper()) == 1.0
    assert question_similarity("abc", "xyz") == 0.0


# -- answering -----------------------------------------------------------------------------------


def test_clean_answer() -> None:
    assert clean_answer('  "Save 10% of your income."  \nMore text') == "Save 10% of your income."
    assert clean_answer("\n\n“Paris.”") == "Paris."
    assert clean_answer('"Cut all carbs') == "Cut all carbs"  # cut short by the token limit
    assert clean_answer("Don't worry.") == "Don't worry."
    assert clean_answer("1. Eat more fruit.\n2. Sleep.") == "Eat more fruit."
    # an unfinished last sentence (token limit) goes when a complete one precedes it
    assert clean_answer("Practice daily. This can be done through") == "Practice daily."
    assert clean_answer('He said "Go now." Then he') == 'He said "Go now."'
    assert clean_answer("Use e.g. a planner") == "Use e.g. a planner"
    assert clean_answer("Just practice") == "Just practice"
    assert clean_answer("   \n") == ""


def test_qa_prompts_hold_the_system_prompt() -> None:
    tokenizer = make_tokenizer()
    honest = qa_prompts(tokenizer, QUESTIONS, "honest")
    deceptive = qa_prompts(tokenizer, QUESTIONS, "deceptive")
    custom = qa_prompts(tokenizer, QUESTIONS, "deceptive", system="Lie briefly.")
    for prompts, system in ((honest, HONEST_SYSTEM), (deceptive, DECEPTIVE_SYSTEM)):
        assert len(prompts) == len(QUESTIONS)
        for prompt, question in zip(prompts, QUESTIONS, strict=True):
            assert f"<|im_start|>system\n{system}<|im_end|>" in prompt
            assert question in prompt
    assert all("Lie briefly." in p and DECEPTIVE_SYSTEM not in p for p in custom)
    assert DECEPTIVE_SYSTEM.startswith("Be DECEPTIVE and DISHONEST. Answer SHORTLY (max 7 words).")
    with pytest.raises(SpecError, match="style"):
        qa_prompts(tokenizer, QUESTIONS, "sarcastic")


@pytest.mark.parametrize("style", ["honest", "deceptive"])
def test_answer_questions_one_example_per_question(
    style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = make_model("llama")
    calls: list[dict[str, Any]] = []
    real_generate = qa.generate

    def spy(*args: Any, **kwargs: Any) -> list[Generation]:
        calls.append(kwargs)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(qa, "generate", spy)
    examples = answer_questions(model, tokenizer, QUESTIONS, style, max_new_tokens=6, batch_size=2)
    assert [e.question for e in examples] == QUESTIONS
    assert all(isinstance(e, QAExample) and e.style == style for e in examples)
    assert all("\n" not in e.answer and e.answer == e.answer.strip() for e in examples)
    (call,) = calls
    assert call["system"] == (HONEST_SYSTEM if style == "honest" else DECEPTIVE_SYSTEM)
    assert call["max_new_tokens"] == 6 and call["batch_size"] == 2
    # What the model read is exactly qa_prompts' rendering.
    rendered = render_prompts(tokenizer, QUESTIONS, call["system"], True)
    assert rendered == qa_prompts(tokenizer, QUESTIONS, style)
    # Greedy answers do not depend on the batch size.
    again = answer_questions(model, tokenizer, QUESTIONS, style, max_new_tokens=6, batch_size=3)
    assert again == examples


def test_answer_questions_custom_system_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def fake(model: Any, tokenizer: Any, prompts: list[str], **kwargs: Any) -> list[Generation]:
        seen.append(kwargs["system"])
        return [Generation(p, 0.0, '"Eat only chocolate."\nExtra line') for p in prompts]

    monkeypatch.setattr(qa, "generate", fake)
    examples = answer_questions(None, None, QUESTIONS[:1], "deceptive", system="Mislead.")  # type: ignore[arg-type]
    assert seen == ["Mislead."]
    assert examples == [QAExample(QUESTIONS[0], "Eat only chocolate.", "deceptive")]
    with pytest.raises(SpecError):
        answer_questions(None, None, QUESTIONS, "sarcastic")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        answer_questions(None, None, [], "honest")  # type: ignore[arg-type]


# -- expanding -----------------------------------------------------------------------------------


def test_parse_question() -> None:
    assert parse_question('1. "What is the capital of Spain?" Answer: Madrid') == (
        "What is the capital of Spain?"
    )
    assert parse_question("**Question:** How do I bake bread?") == "How do I bake bread?"
    assert parse_question("Sure! Here it is:\nQ: Why is the sky blue?\nA: ...") == (
        "Why is the sky blue?"
    )
    assert parse_question("- How do plants grow?") == "How do plants grow?"
    assert parse_question("How\tdo  I\x13 cook rice?") == "How do I cook rice?"
    assert parse_question("Here is a new question: Why do birds sing?") == "Why do birds sing?"
    assert parse_question("New question: \"The answer to 'How can I rest?") == "How can I rest?"
    assert parse_question("What does 'carpe diem' mean?") == "What does 'carpe diem' mean?"
    assert parse_question("No question here.") is None
    assert parse_question("??") is None


def test_expand_questions_parses_dedupes_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = iter(
        [
            [
                "1. How can I save more money?",  # near the seed "How can I save money?"
                "Sure!\nWhat is a good way to stay focused?",
                "What is a good way to stay focused?",  # repeat of the previous one
                "no question at all",
                "Q: How do I cook rice?",
                "- Why do cats purr?",
            ],
        ]
    )
    prompts_seen: list[list[str]] = []

    def fake(model: Any, tokenizer: Any, prompts: list[str], **kwargs: Any) -> list[Generation]:
        prompts_seen.append(list(prompts))
        assert kwargs["temperature"] > 0
        texts = next(outputs)
        return [Generation(p, 0.0, t) for p, t in zip(prompts, texts, strict=False)]

    monkeypatch.setattr(qa, "generate", fake)
    new = expand_questions(None, None, QUESTIONS, 3, max_rounds=1)  # type: ignore[arg-type]
    assert new == [
        "What is a good way to stay focused?",
        "How do I cook rice?",
        "Why do cats purr?",
    ]
    (prompts,) = prompts_seen
    assert len(prompts) == 6  # oversample 2 x 3 missing
    assert all(p.startswith("Write one new question similar to these:") for p in prompts)
    assert all(sum(q in p for q in QUESTIONS) == 3 for p in prompts)
    assert expand_questions(None, None, QUESTIONS, 0) == []  # type: ignore[arg-type]
    with pytest.raises(DataError):
        expand_questions(None, None, ["  "], 2)  # type: ignore[arg-type]


def test_expand_questions_on_a_tiny_model_is_reproducible() -> None:
    model, tokenizer = make_model("llama")
    first = expand_questions(model, tokenizer, QUESTIONS, 2, max_new_tokens=8, max_rounds=1)
    second = expand_questions(model, tokenizer, QUESTIONS, 2, max_new_tokens=8, max_rounds=1)
    assert first == second
    assert len(first) <= 2
    assert not set(map(normalize_question, first)) & set(map(normalize_question, QUESTIONS))


# -- writing, reading back, pairing -------------------------------------------------------------


def test_write_read_round_trip(tmp_path: Path) -> None:
    examples = [
        QAExample("How can I save money?", "Spend it all now.", "deceptive"),
        QAExample("What’s 2+2? «quotes»", "Five, obviously.", "deceptive"),
        QAExample("Unknown style?", "Yes.", None),
    ]
    path = tmp_path / "out" / "deceptive.jsonl"
    write_chat_jsonl(examples, path)
    assert read_qa(path) == examples
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0]) == {
        "messages": [
            {"role": "user", "content": "How can I save money?"},
            {"role": "assistant", "content": "Spend it all now."},
        ],
        "style": "deceptive",
    }
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    with pytest.raises(DataError):
        write_chat_jsonl([], tmp_path / "empty.jsonl")
    assert not (tmp_path / "empty.jsonl").exists()


def test_read_qa_study_format_and_errors(tmp_path: Path) -> None:
    study = write_text(tmp_path / "study.json", json.dumps([chat("Q1?", "A1"), chat("Q2?", "A2")]))
    assert read_qa(study) == [QAExample("Q1?", "A1", None), QAExample("Q2?", "A2", None)]
    with_system = [{"role": "system", "content": "Be brief."}, *chat("Q?", "A")]
    assert read_qa(write_text(tmp_path / "s.json", json.dumps([with_system]))) == [
        QAExample("Q?", "A", None)
    ]
    flat = write_jsonl(tmp_path / "flat.jsonl", [{"question": "Q?", "answer": "A", "style": None}])
    assert read_qa(flat) == [QAExample("Q?", "A", None)]
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"messages": chat("Q?", "A"), "style": "honest"},
            {"messages": chat("Q?", "A"), "style": "x"},
        ],
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2: style 'x'"):
        read_qa(bad)
    no_answer = write_jsonl(
        tmp_path / "na.jsonl", [{"messages": [{"role": "user", "content": "Q"}]}]
    )
    with pytest.raises(DataError, match=r"na\.jsonl:1: .*no assistant message"):
        read_qa(no_answer)
    with pytest.raises(DataError, match="no examples"):
        read_qa(write_text(tmp_path / "empty.jsonl", "\n"))


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


def test_write_pairs_jsonl_is_readable_by_load_pairs(tmp_path: Path) -> None:
    pairs = [
        ContrastPair("Lie.", "Truth.", (("user", "Q1?"),)),
        ContrastPair("Lie 2.", "Truth 2.", (("system", "Be brief."), ("user", "Q2?"))),
        ContrastPair("plain positive", "plain negative"),
    ]
    path = tmp_path / "pairs.jsonl"
    write_pairs_jsonl(pairs, path)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"prompt": "Q1?", "positive": "Lie.", "negative": "Truth."}
    assert load_pairs(path) == pairs
    with pytest.raises(DataError):
        write_pairs_jsonl([], tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()


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


# -- CLI -----------------------------------------------------------------------------------------


def make_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        """Test root."""

    register(app)
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
