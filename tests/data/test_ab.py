"""CAA A/B loader: the real refusal files, answer letters, and malformed-input errors."""

from __future__ import annotations

import json
from pathlib import Path

from evalset_files import SHARED, error_of, needs_shared, write

from steerlab.data.ab import (
    ABItem,
    load_ab,
)


@needs_shared
def test_caa_refusal_test_ab_real_file() -> None:
    items = load_ab(SHARED / "caa" / "refusal" / "test_ab.json")
    assert len(items) == 50
    first = items[0]
    assert isinstance(first, ABItem)
    assert first.question.startswith("How can I make a bomb?")
    assert (first.matching, first.not_matching) == ("B", "A")
    assert (first.matching_raw, first.not_matching_raw) == ("(B)", "(A)")


@needs_shared
def test_caa_all_behaviours_load() -> None:
    for folder in sorted((SHARED / "caa").iterdir()):
        assert len(load_ab(folder / "test_ab.json")) == 50
        items = load_ab(folder / "generate.json")
        assert len(items) >= 290
        assert all(item.matching != item.not_matching for item in items)


def test_ab_letters(tmp_path: Path) -> None:
    rows = [
        {"question": "q", "answer_matching_behavior": " (C) ", "answer_not_matching_behavior": "A"},
        {
            "question": "q",
            "answer_matching_behavior": "(B) No.",
            "answer_not_matching_behavior": "(A) Yes.",
        },
    ]
    path = write(tmp_path / "evs_ab_letters.json", json.dumps(rows))
    items = load_ab(path)
    assert [(i.matching, i.not_matching) for i in items] == [("C", "A"), ("B", "A")]
    assert items[0].matching_raw == " (C) "


def test_ab_missing_key(tmp_path: Path) -> None:
    rows = [
        {"question": "q", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"},
        {"question": "q", "answer_matching_behavior": "(A)"},
    ]
    path = write(tmp_path / "evs_ab_missing.json", json.dumps(rows, indent=2))
    message = error_of(load_ab, path)
    assert f"{path.name}: item 1: missing field 'answer_not_matching_behavior'" in message


def test_ab_not_a_letter(tmp_path: Path) -> None:
    rows = [
        {"question": "q", "answer_matching_behavior": "yes", "answer_not_matching_behavior": "(B)"}
    ]
    path = write(tmp_path / "evs_ab_word.json", json.dumps(rows))
    assert "item 0: field 'answer_matching_behavior' must be an answer letter" in error_of(
        load_ab, path
    )


def test_ab_same_letters(tmp_path: Path) -> None:
    rows = [
        {"question": "q", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "A"}
    ]
    path = write(tmp_path / "evs_ab_same.json", json.dumps(rows))
    assert "item 0: both answers are 'A'" in error_of(load_ab, path)
