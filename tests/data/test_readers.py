"""Errors every evaluation-set loader shares (steerlab.data.readers): files, JSON, UTF-8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evalset_files import error_of, write

from steerlab.data.ab import load_ab
from steerlab.data.harmful import load_harmful
from steerlab.data.mmlu import load_mmlu
from steerlab.data.statements import load_statements
from steerlab.data.stereoset import load_stereoset
from steerlab.data.truthfulqa import load_truthfulqa_mc

ALL_LOADERS = [
    load_mmlu,
    load_ab,
    load_harmful,
    load_truthfulqa_mc,
    load_stereoset,
    load_statements,
]


@pytest.mark.parametrize("loader", ALL_LOADERS)
def test_missing_file(loader, tmp_path: Path) -> None:
    message = error_of(loader, tmp_path / "evs_does_not_exist.csv")
    assert "no such file" in message


@pytest.mark.parametrize("loader", ALL_LOADERS)
def test_empty_file(loader, tmp_path: Path) -> None:
    message = error_of(loader, write(tmp_path / "evs_empty.json", "  \n\n"))
    assert "empty file" in message


@pytest.mark.parametrize("loader", ALL_LOADERS)
def test_not_utf8(loader, tmp_path: Path) -> None:
    path = tmp_path / "evs_latin1.csv"
    path.write_bytes(b"statement,label\nfirst,1\ncaf\xe9,0\n")
    message = error_of(loader, path)
    assert f"{path.name}:3: not UTF-8" in message


@pytest.mark.parametrize("loader", [load_ab, load_truthfulqa_mc, load_harmful, load_mmlu])
def test_empty_json_list(loader, tmp_path: Path) -> None:
    message = error_of(loader, write(tmp_path / "evs_empty_list.json", "[]\n"))
    assert "no " in message and "in the file" in message


@pytest.mark.parametrize("loader", [load_ab, load_truthfulqa_mc, load_harmful, load_stereoset])
def test_invalid_json_list(loader, tmp_path: Path) -> None:
    path = write(tmp_path / "evs_bad_list.json", '[\n  {"question": "q"},\n  {"question": }\n]\n')
    message = error_of(loader, path)
    assert f"{path.name}:3: invalid JSON" in message


def test_invalid_jsonl_line(tmp_path: Path) -> None:
    good = json.dumps(
        {
            "type": "intersentence",
            "target": "t",
            "bias_type": "race",
            "context": "c",
            "stereotype": "s",
            "anti-stereotype": "a",
            "unrelated": "u",
        }
    )
    path = write(tmp_path / "evs_bad.jsonl", f"{good}\n\n{good}\n{{not json\n")
    assert f"{path.name}:4: invalid JSON" in error_of(load_stereoset, path)


def test_json_not_a_list(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_obj.json", '{\n  "question": "q"\n}\n')
    assert "expected a JSON list" in error_of(load_ab, path)


def test_json_item_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_not_obj.json", '["just text"]')
    assert f"{path.name}: item 0: expected a JSON object" in error_of(load_ab, path)
