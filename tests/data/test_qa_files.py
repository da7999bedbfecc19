"""The Q/A recipe's files (steerlab.data.qa_files): question files, Q/A chat files, pair files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qa_samples import QUESTIONS, chat, write_jsonl, write_text

from steerlab.data import ContrastPair, load_pairs
from steerlab.data.qa_files import (
    QAExample,
    read_qa,
    read_questions,
    write_chat_jsonl,
    write_pairs_jsonl,
)
from steerlab.errors import DataError


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
