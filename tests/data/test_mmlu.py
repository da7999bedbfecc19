"""MMLU loader: the real files, the Hub layouts, and every malformed-input error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from evalset_files import SHARED, error_of, needs_shared, write

from steerlab.data.mmlu import (
    MultipleChoiceItem,
    load_mmlu,
)
from steerlab.errors import DataError


@needs_shared
@pytest.mark.parametrize(
    ("name", "count"),
    [("medical_genetics", 100), ("international_law", 121), ("high_school_computer_science", 100)],
)
def test_mmlu_real_files(name: str, count: int) -> None:
    items = load_mmlu(SHARED / "mmlu" / f"{name}_test.csv")
    assert len(items) == count
    assert all(isinstance(item, MultipleChoiceItem) for item in items)
    assert all(item.subject == name and len(item.choices) == 4 for item in items)
    assert all(0 <= item.answer < 4 for item in items)


@needs_shared
def test_mmlu_real_fields() -> None:
    items = load_mmlu(SHARED / "mmlu" / "medical_genetics_test.csv")
    first = items[0]
    assert first.question == "In a Robertsonian translocation fusion occurs at the:"
    assert first.choices == ("telomeres.", "centromeres.", "histones.", "ends of the long arms.")
    assert first.answer == 1 and first.answer_letter == "B"
    # A quoted field with commas.
    assert items[2].question.startswith("If the frequency of males affected with an X-linked")
    assert items[2].choices[0] == "0.01"


@needs_shared
def test_mmlu_multiline_fields_and_limit() -> None:
    path = SHARED / "mmlu" / "high_school_computer_science_test.csv"
    items = load_mmlu(path)
    assert any("\n" in item.question for item in items)  # 302 physical lines, 100 rows
    assert load_mmlu(path, limit=7) == items[:7]
    assert load_mmlu(path, limit=0) == []


def test_mmlu_hub_layout_jsonl(tmp_path: Path) -> None:
    rows = [
        {"question": "Q1?", "choices": ["a", "b", "c", "d"], "answer": 2, "subject": "anatomy"},
        {"question": "Q2?", "choices": ["w", "x", "y", "z"], "answer": 0, "subject": "anatomy"},
    ]
    path = write(tmp_path / "evs_mmlu_hub.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    items = load_mmlu(path)
    assert items == [
        MultipleChoiceItem("Q1?", ("a", "b", "c", "d"), 2, "anatomy"),
        MultipleChoiceItem("Q2?", ("w", "x", "y", "z"), 0, "anatomy"),
    ]


def test_mmlu_hub_layout_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path / "evs_mmlu_hub.csv",
        "question,subject,choices,answer\n"
        'Q1?,virology,"[""a"", ""b"", ""c"", ""d""]",3\n'
        "Q2?,virology,\"['p', 'q', 'r', 's']\",1\n",
    )
    items = load_mmlu(path)
    assert items[0] == MultipleChoiceItem("Q1?", ("a", "b", "c", "d"), 3, "virology")
    assert items[1] == MultipleChoiceItem("Q2?", ("p", "q", "r", "s"), 1, "virology")


def test_mmlu_header_on_letter_layout_and_subject_name(tmp_path: Path) -> None:
    path = write(
        tmp_path / "anatomy_dev.csv", "question,A,B,C,D,answer\nQ?,a,b,c,d,d\n\nQ2?,a,b,c,d,A\n"
    )
    items = load_mmlu(path)
    assert [(i.answer, i.subject) for i in items] == [(3, "anatomy"), (0, "anatomy")]


def test_mmlu_no_rows_after_header(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_mmlu_header_only.csv", "question,A,B,C,D,answer\n")
    assert "no questions" in error_of(load_mmlu, path)


def test_mmlu_wrong_column_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "evs_mmlu_cols_test.csv",
        'Q1?,a,b,c,d,A\n"Q2 spans\ntwo lines?",a,b,c,d,B\nQ3?,a,b,c,A\n',
    )
    message = error_of(load_mmlu, path)
    assert f"{path.name}:4: expected 6 columns" in message
    assert "got 5" in message


def test_mmlu_bad_answer_letter(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_mmlu_letter_test.csv", "Q1?,a,b,c,d,A\n\nQ2?,a,b,c,d,E\n")
    message = error_of(load_mmlu, path)
    assert f"{path.name}:3: answer must be one of A, B, C, D" in message
    assert "'E'" in message


def test_mmlu_unterminated_quote(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_mmlu_quote_test.csv", 'Q1?,a,b,c,d,A\n"Q2?,a,b,c,d,A\n')
    assert f"{path.name}:2: malformed CSV" in error_of(load_mmlu, path)


def test_mmlu_hub_missing_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "evs_mmlu_nokey.jsonl",
        '{"question": "q", "choices": ["a", "b"], "answer": 1}\n{"question": "q", "answer": 0}\n',
    )
    assert f"{path.name}:2: missing field 'choices'" in error_of(load_mmlu, path)


def test_mmlu_hub_answer_out_of_range(tmp_path: Path) -> None:
    path = write(
        tmp_path / "evs_mmlu_range.json",
        json.dumps([{"question": "q", "choices": ["a", "b", "c", "d"], "answer": 4}]),
    )
    assert f"{path.name}: item 0: answer must be an index 0-3" in error_of(load_mmlu, path)


def test_mmlu_hub_csv_bad_choices(tmp_path: Path) -> None:
    path = write(
        tmp_path / "evs_mmlu_hub_bad.csv",
        'question,choices,answer\nq,"[""a"", ""b""]",0\nq,not a list,0\n',
    )
    assert f"{path.name}:3: choices must be a list" in error_of(load_mmlu, path)


def test_mmlu_hub_csv_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_mmlu_hub_nocol.csv", 'question,choices\nq,"[""a"", ""b""]"\n')
    assert f"{path.name}:1: missing column 'answer'" in error_of(load_mmlu, path)


def test_mmlu_hub_id_without_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(DataError, match=r"cais/mmlu:medical_genetics: .*pip install datasets"):
        load_mmlu("cais/mmlu:medical_genetics")
