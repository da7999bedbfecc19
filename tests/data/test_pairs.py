"""Tests for steerlab.data.pairs: every input format, the built-in sets, hashing, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import make_tokenizer
from steerlab.data import (
    ContrastPair,
    builtin_pairs,
    builtin_path,
    load_pairs,
    pair_examples,
    pairs_from_ab,
    pairs_sha256,
)
from steerlab.errors import DataError, SteerlabError
from steerlab.record import TextExample

ROOT = Path(__file__).resolve().parents[2]
# The shared data lie beside the project (../shared); a device copy may hold them inside it.
SHARED_DATA = next(
    (d for d in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if d.is_dir()),
    ROOT.parent / "shared" / "data",
)
CAA_REFUSAL = SHARED_DATA / "caa" / "refusal"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- formats ---------------------------------------------------------------------------


def test_plain_positive_negative(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "plain.jsonl",
        [
            {"positive": "I love this.", "negative": "I hate this."},
            {"positive": "Great day!", "negative": "Awful day."},
        ],
    )
    pairs = load_pairs(path)
    assert pairs == [
        ContrastPair("I love this.", "I hate this.", None),
        ContrastPair("Great day!", "Awful day.", None),
    ]
    assert all(p.messages is None for p in pairs)


def test_load_accepts_str_path(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "plain.jsonl", [{"positive": "a", "negative": "b"}])
    assert load_pairs(str(path)) == [ContrastPair("a", "b")]


def test_prompt_becomes_user_message(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl", [{"prompt": "How are you?", "positive": "Great!", "negative": "Bad."}]
    )
    (pair,) = load_pairs(path)
    assert pair.positive == "Great!"
    assert pair.negative == "Bad."
    assert pair.messages == (("user", "How are you?"),)


def test_prompt_with_system(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [{"system": "Be brief.", "prompt": "Hi?", "positive": "Hello!", "negative": "Go away."}],
    )
    (pair,) = load_pairs(path)
    assert pair.messages == (("system", "Be brief."), ("user", "Hi?"))


def test_messages_history(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "How was your day?"},
    ]
    path = write_jsonl(
        tmp_path / "m.jsonl", [{"messages": messages, "positive": "Lovely.", "negative": "Dull."}]
    )
    (pair,) = load_pairs(path)
    assert pair.messages == tuple((m["role"], m["content"]) for m in messages)
    assert pair.positive == "Lovely."
    assert pair.negative == "Dull."


def test_messages_with_system_field_prepends_system(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "system": "S",
                "messages": [{"role": "user", "content": "U"}],
                "positive": "p",
                "negative": "n",
            }
        ],
    )
    (pair,) = load_pairs(path)
    assert pair.messages == (("system", "S"), ("user", "U"))


def test_json_list_file(tmp_path: Path) -> None:
    rows = [
        {"positive": "a", "negative": "b"},
        {"prompt": "q", "positive": "c", "negative": "d"},
    ]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    pairs = load_pairs(path)
    assert pairs == [ContrastPair("a", "b"), ContrastPair("c", "d", (("user", "q"),))]


def test_json_list_without_json_suffix(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(json.dumps([{"positive": "a", "negative": "b"}]), encoding="utf-8")
    assert load_pairs(path) == [ContrastPair("a", "b")]


def test_jsonl_without_jsonl_suffix(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pairs.txt", [{"positive": "a", "negative": "b"}] * 2)
    assert load_pairs(path) == [ContrastPair("a", "b")] * 2


def test_caa_ab_format(tmp_path: Path) -> None:
    rows = [
        {
            "question": "Pick one.\n\nChoices:\n(A) yes\n(B) no",
            "answer_matching_behavior": "(A)",
            "answer_not_matching_behavior": "(B)",
        },
        {
            "question": "Another?",
            "answer_matching_behavior": " (B) ",
            "answer_not_matching_behavior": "(A)",
        },
        {
            "question": "No parentheses",
            "answer_matching_behavior": "A",
            "answer_not_matching_behavior": "B",
        },
    ]
    path = tmp_path / "ab.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    pairs = load_pairs(path)
    assert [(p.positive, p.negative) for p in pairs] == [("(A", "(B"), ("(B", "(A"), ("A", "B")]
    assert pairs[0].messages == (("user", rows[0]["question"]),)
    assert pairs_from_ab(path) == pairs


def test_caa_ab_format_in_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "ab.jsonl",
        [
            {
                "question": "Q",
                "answer_matching_behavior": "(B)",
                "answer_not_matching_behavior": "(A)",
            }
        ],
    )
    assert load_pairs(path) == [ContrastPair("(B", "(A", (("user", "Q"),))]


def test_blank_lines_and_crlf_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'{"positive": "a", "negative": "b"}\r\n\r\n   \r\n{"positive": "c", "negative": "d"}\r\n'
    )
    assert load_pairs(path) == [ContrastPair("a", "b"), ContrastPair("c", "d")]


def test_real_caa_refusal_file() -> None:
    path = CAA_REFUSAL / "generate.json"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    raw = json.loads(path.read_text(encoding="utf-8"))
    pairs = load_pairs(path)
    assert len(pairs) == len(raw) > 0
    letters = {"(A", "(B"}
    for pair, row in zip(pairs, raw, strict=True):
        assert pair.positive in letters
        assert pair.negative in letters
        assert pair.positive != pair.negative
        assert pair.positive == row["answer_matching_behavior"].strip()[:-1]
        assert pair.messages == (("user", row["question"]),)
    assert len(load_pairs(path, limit=10)) == 10


# -- built-in sets and limit --------------------------------------------------------------


@pytest.mark.parametrize("name", ["happy_sad", "honesty"])
def test_builtin_sets(name: str) -> None:
    pairs = load_pairs(f"builtin:{name}")
    assert len(pairs) == 64
    assert pairs == builtin_pairs(name)
    assert builtin_path(name).is_file()
    for pair in pairs:
        assert pair.positive.strip()
        assert pair.negative.strip()
        assert pair.positive != pair.negative
        assert pair.messages is not None
        assert pair.messages[-1][0] == "user"


def test_builtin_limit() -> None:
    full = load_pairs("builtin:happy_sad")
    assert load_pairs("builtin:happy_sad", limit=5) == full[:5]


def test_unknown_builtin() -> None:
    with pytest.raises(DataError, match="nope"):
        load_pairs("builtin:nope")


def test_limit(tmp_path: Path) -> None:
    rows = [{"positive": f"p{i}", "negative": f"n{i}"} for i in range(5)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    assert [p.positive for p in load_pairs(path, limit=2)] == ["p0", "p1"]
    assert len(load_pairs(path, limit=100)) == 5
    assert len(load_pairs(path, limit=None)) == 5


# -- pair_examples -------------------------------------------------------------------------


def test_pair_examples_plain_text_has_no_template() -> None:
    tokenizer = make_tokenizer()
    positive, negative = pair_examples(tokenizer, ContrastPair("happy text", "sad text"))
    assert positive == TextExample("happy text", span_start=0)
    assert negative == TextExample("sad text", span_start=0)


def test_pair_examples_renders_chat_template() -> None:
    tokenizer = make_tokenizer()
    pair = ContrastPair("I am happy.", "I am sad.", (("system", "Be nice."), ("user", "Mood?")))
    positive, negative = pair_examples(tokenizer, pair)
    expected_prompt = (
        "<|im_start|>system\nBe nice.<|im_end|>\n"
        "<|im_start|>user\nMood?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert positive.text == expected_prompt + "I am happy."
    assert negative.text == expected_prompt + "I am sad."
    assert positive.span_start == negative.span_start == len(expected_prompt)
    assert positive.text[positive.span_start :] == "I am happy."
    assert negative.text[negative.span_start :] == "I am sad."


def test_pair_examples_of_caa_pair_end_with_letter(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "ab.jsonl",
        [
            {
                "question": "Q?",
                "answer_matching_behavior": "(A)",
                "answer_not_matching_behavior": "(B)",
            }
        ],
    )
    (pair,) = load_pairs(path)
    positive, negative = pair_examples(make_tokenizer(), pair)
    assert positive.text.endswith("assistant\n(A")
    assert negative.text.endswith("assistant\n(B")
    assert positive.text[positive.span_start :] == "(A"


# -- hashing -------------------------------------------------------------------------------


def test_pairs_sha256_stable_and_order_sensitive(tmp_path: Path) -> None:
    rows = [
        {"positive": "a", "negative": "b"},
        {"prompt": "q", "positive": "c", "negative": "d"},
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    pairs = load_pairs(path)
    digest = pairs_sha256(pairs)
    assert len(digest) == 64
    int(digest, 16)
    assert pairs_sha256(load_pairs(path)) == digest
    assert pairs_sha256(list(reversed(pairs))) != digest
    assert pairs_sha256(pairs[:1]) != digest
    # Key order in the file does not matter; the content does.
    shuffled_keys = [
        {"negative": "b", "positive": "a"},
        {"negative": "d", "positive": "c", "prompt": "q"},
    ]
    assert pairs_sha256(load_pairs(write_jsonl(tmp_path / "k.jsonl", shuffled_keys))) == digest
    # The chat history is part of the hash.
    plain = [ContrastPair("a", "b"), ContrastPair("c", "d")]
    assert pairs_sha256(plain) != digest


def test_pairs_sha256_known_value() -> None:
    """The documented record form: sorted-key JSON per pair, one line each."""
    pairs = [ContrastPair("é", "b"), ContrastPair("c", "d", (("user", "q"),))]
    records = [
        {"positive": "é", "negative": "b"},
        {"positive": "c", "negative": "d", "messages": [{"role": "user", "content": "q"}]},
    ]
    expected = hashlib.sha256(
        "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode()
    ).hexdigest()
    assert pairs_sha256(pairs) == expected


# -- errors --------------------------------------------------------------------------------


def _error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_pairs(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    assert isinstance(info.value, SteerlabError)
    return message


def test_malformed_json_line_reports_line_number(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            '{"positive": "a", "negative": "b"}',
            '{"positive": "c", "negative": "d"}',
            '{"positive": "e", "negative": ',
            '{"positive": "g", "negative": "h"}',
        ],
    )
    message = _error(path)
    assert f"{path}:3:" in message
    assert "invalid JSON" in message


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        ['{"positive": "a", "negative": "b"}', "", "", "not json at all"],
    )
    assert f"{path}:4:" in _error(path)


def test_malformed_json_list_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"positive": "a", "negative": "b"},\n  {"positive": oops}\n]\n')
    assert f"{path}:3:" in _error(path)


@pytest.mark.parametrize("field", ["positive", "negative"])
def test_missing_field_names_field_and_line(tmp_path: Path, field: str) -> None:
    row = {"positive": "a", "negative": "b"}
    del row[field]
    path = write_jsonl(tmp_path / "p.jsonl", [{"positive": "x", "negative": "y"}, row])
    message = _error(path)
    assert f"{path}:2:" in message
    assert repr(field) in message
    assert "missing" in message


def test_missing_field_in_json_list_names_item(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"positive": "a", "negative": "b"}, {"positive": "a"}]))
    message = _error(path)
    assert "item 1" in message
    assert "'negative'" in message


def test_caa_missing_negative_answer(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "ab.jsonl", [{"question": "Q", "answer_matching_behavior": "(A)"}]
    )
    message = _error(path)
    assert f"{path}:1:" in message
    assert "answer_not_matching_behavior" in message


@pytest.mark.parametrize(
    "content",
    ["", "\n\n   \n"],
    ids=["empty", "blank-lines"],
)
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    assert "no pairs" in _error(path)


def test_empty_json_list(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]")
    assert "no pairs" in _error(path)


def test_json_object_instead_of_list(tmp_path: Path) -> None:
    path = tmp_path / "obj.json"
    path.write_text('{"positive": "a", "negative": "b"}')
    assert "list" in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in _error(tmp_path / "nowhere.jsonl")


def test_folder_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    assert "no such file" in _error(folder)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"positive": "caf\xe9", "negative": "b"}\n')
    assert "UTF-8" in _error(path)


def test_line_not_an_object(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", ['{"positive": "a", "negative": "b"}', "[1, 2]"])
    message = _error(path)
    assert f"{path}:2:" in message
    assert "object" in message


def test_bad_role_in_messages(tmp_path: Path) -> None:
    row = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}],
        "positive": "a",
        "negative": "b",
    }
    path = write_jsonl(tmp_path / "m.jsonl", [{"positive": "x", "negative": "y"}] * 2 + [row])
    message = _error(path)
    assert f"{path}:3:" in message
    assert "messages[1].role" in message
    assert "robot" in message


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"positive": 1, "negative": "b"}, "'positive'"),
        ({"positive": "a", "negative": None}, "'negative'"),
        ({"positive": "a", "negative": ["b"]}, "'negative'"),
        ({"positive": "   ", "negative": "b"}, "'positive'"),
        ({"prompt": 3, "positive": "a", "negative": "b"}, "'prompt'"),
        ({"prompt": "q", "system": 7, "positive": "a", "negative": "b"}, "'system'"),
        ({"system": "s", "positive": "a", "negative": "b"}, "'system'"),
        ({"messages": [], "positive": "a", "negative": "b"}, "messages"),
        ({"messages": "hi", "positive": "a", "negative": "b"}, "messages"),
        ({"messages": ["hi"], "positive": "a", "negative": "b"}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": 5}], "positive": "a", "negative": "b"},
            "content",
        ),
        (
            {"question": "Q", "answer_matching_behavior": 1, "answer_not_matching_behavior": "(B)"},
            "answer_matching_behavior",
        ),
        (
            {
                "question": 2,
                "answer_matching_behavior": "(A)",
                "answer_not_matching_behavior": "(B)",
            },
            "question",
        ),
    ],
    ids=[
        "int-positive",
        "null-negative",
        "list-negative",
        "blank-positive",
        "int-prompt",
        "int-system",
        "system-without-prompt",
        "empty-messages",
        "string-messages",
        "non-object-message",
        "int-content",
        "int-answer",
        "int-question",
    ],
)
def test_non_string_values(tmp_path: Path, row: dict[str, object], needle: str) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"positive": "ok", "negative": "ok2"}, row])
    message = _error(path)
    assert f"{path}:2:" in message
    assert needle in message


def test_first_bad_line_is_reported(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "p.jsonl",
        ['{"positive": "a", "negative": "b"}', '{"positive": "a"}', "{broken"],
    )
    assert f"{path}:2:" in _error(path)


def test_slices_keep_part_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(json.dumps({"positive": f"p{i}", "negative": f"n{i}"}) + "\n" for i in range(10))
    )
    assert [p.positive for p in load_pairs(f"{path}[:3]")] == ["p0", "p1", "p2"]
    assert [p.positive for p in load_pairs(f"{path}[7:]")] == ["p7", "p8", "p9"]
    assert [p.positive for p in load_pairs(f"{path}[-2:]", limit=1)] == ["p8"]
    held_out = load_pairs("builtin:happy_sad[48:]")
    assert held_out == load_pairs("builtin:happy_sad")[48:] and len(held_out) == 16
    with pytest.raises(DataError, match=r"slice \[20:\] keeps no pairs"):
        load_pairs(f"{path}[20:]")


def test_a_file_named_with_brackets_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "odd[1:2]"
    path.write_text(json.dumps({"positive": "a", "negative": "b"}) + "\n")
    assert len(load_pairs(path)) == 1
