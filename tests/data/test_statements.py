"""True/false statements loader: the facts files, JSONL, limits, and malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalset_files import SHARED, error_of, needs_shared, write

from steerlab.data.statements import (
    Statement,
    load_statements,
)
from steerlab.errors import SpecError


@needs_shared
def test_facts_real_files() -> None:
    facts = load_statements(SHARED / "facts" / "facts_true_false.csv")
    assert len(facts) == 612
    assert sum(s.label for s in facts) == 306
    assert facts[0] == Statement(
        "The Earth's atmosphere protects us from harmful radiation from the sun.", True
    )
    assert facts[1].label is False
    cities = load_statements(SHARED / "facts" / "cities.csv")  # extra columns ignored
    assert len(cities) == 1496
    assert cities[0] == Statement("The city of Krasnodar is in Russia.", True)


def test_statements_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_st.jsonl", '{"statement": "s", "label": 1}\n')
    assert load_statements(path) == [Statement("s", True)]


def test_negative_limit_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_neg_limit.csv", "statement,label\ns,1\n")
    with pytest.raises(SpecError):
        load_statements(path, limit=-1)


def test_statements_bad_label(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_facts_label.csv", "statement,label\nA.,1\nB.,0\nC.,yes\n")
    message = error_of(load_statements, path)
    assert f"{path.name}:4: label must be 0 or 1, got 'yes'" in message


def test_statements_missing_label_column(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_facts_nolabel.csv", "statement,truth\nA.,1\n")
    assert f"{path.name}:1: missing column 'label'" in error_of(load_statements, path)


def test_statements_wrong_column_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "evs_facts_cols.csv",
        'statement,label,city\n"A, with comma.",1,X\n"B\nspans lines.",0,Y\nC.,1\n',
    )
    message = error_of(load_statements, path)
    assert f"{path.name}:5: expected 3 columns (statement,label,city), got 2" in message


def test_statements_header_only(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_facts_header.csv", "statement,label\n")
    assert "no statements" in error_of(load_statements, path)


def test_statements_json_missing_label(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_facts_nolabel.jsonl", '{"statement": "s"}\n')
    assert f"{path.name}:1: missing field 'label'" in error_of(load_statements, path)
