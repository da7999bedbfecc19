"""The built-in data registry: every built-in name through every loader that takes a path."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from steerlab.data import (
    BUILTIN_SETS,
    builtin_names,
    builtin_pairs,
    builtin_set,
    load_ab,
    load_facts,
    load_harmful,
    load_mmlu,
    load_pairs,
    load_statements,
    load_stereoset,
    load_task_data,
    load_truthfulqa_mc,
    resolve_data_path,
)
from steerlab.data.qa import read_qa, read_questions
from steerlab.data.registry import FORMATS, builtin_format, parse_source_spec
from steerlab.errors import DataError
from steerlab.evaluate.specs import behavior_task, helpfulness_task, perplexity_task
from steerlab.tuning.data import load_chats
from steerlab.tuning.sources import tuning_chats

# Every public loader that takes a data path, with the format it reads.
LOADERS: dict[str, tuple[str, Callable[[str], list[Any]]]] = {
    "load_pairs": ("pairs", load_pairs),
    "builtin_pairs": ("pairs", lambda path: builtin_pairs(path)),
    "load_ab": ("ab", load_ab),
    "load_mmlu": ("mc", load_mmlu),
    "load_statements": ("statements", load_statements),
    "load_facts": ("statements", load_facts),
    "perplexity_task": ("texts", lambda path: list(perplexity_task(path).texts)),
    "read_questions": ("questions", read_questions),
    "load_chats": ("chats", load_chats),
    "read_qa": ("qa", read_qa),
    "load_harmful": ("harmful", load_harmful),
    "load_truthfulqa_mc": ("truthfulqa", load_truthfulqa_mc),
    "load_stereoset": ("stereoset", load_stereoset),
}
CASES = [(name, loader) for name in BUILTIN_SETS for loader in LOADERS]


def test_every_shipped_file_is_registered() -> None:
    folder = Path(str(resources.files("steerlab.data") / "builtin"))
    shipped = {p.name for p in folder.iterdir() if p.is_file() and p.name != "README.md"}
    assert shipped == {entry.file for entry in BUILTIN_SETS.values()}
    for entry in BUILTIN_SETS.values():
        assert entry.path.is_file()
        assert set(entry.formats) <= set(FORMATS)


@pytest.mark.parametrize("name,loader", CASES)
def test_every_builtin_name_in_every_loader(name: str, loader: str) -> None:
    """A set loads wherever its format is read; elsewhere one line names the sets that fit."""
    data_format, load = LOADERS[loader]
    entry = BUILTIN_SETS[name]
    reference = name if loader == "builtin_pairs" else f"builtin:{name}"
    if data_format in entry.formats:
        assert len(load(reference)) == entry.items
        return
    with pytest.raises(DataError) as info:
        load(reference)
    message = str(info.value)
    assert "\n" not in message
    assert f"builtin:{name} holds {entry.kind}, not {FORMATS[data_format]}" in message
    for fitting in builtin_names(data_format):
        assert fitting in message


@pytest.mark.parametrize("loader", list(LOADERS))
def test_unknown_builtin_name_lists_the_available_names(loader: str) -> None:
    data_format, load = LOADERS[loader]
    reference = "nope" if loader == "builtin_pairs" else "builtin:nope"
    with pytest.raises(DataError, match="builtin:nope: no such built-in set") as info:
        load(reference)
    names = builtin_names(data_format) or tuple(BUILTIN_SETS)
    assert all(name in str(info.value) for name in names)


@pytest.mark.parametrize("name", list(BUILTIN_SETS))
def test_kind_prefixed_specs_and_tuning_data(name: str) -> None:
    """``KIND:builtin:NAME`` (sweep options, load_task_data) and tune's data reader."""
    entry = BUILTIN_SETS[name]
    spec_readers: dict[str, Callable[[], Any]] = {
        "ab": lambda: load_task_data(f"caa:builtin:{name}"),
        "mc": lambda: helpfulness_task(f"mmlu:builtin:{name}").items,
        "statements": lambda: load_task_data(f"facts:builtin:{name}"),
        "pairs": lambda: behavior_task(f"pairs:builtin:{name}").prompts,
    }
    for data_format, read in spec_readers.items():
        if data_format in entry.formats:
            assert len(read()) == entry.items
        else:
            with pytest.raises(DataError, match=f"builtin:{name} holds"):
                read()
    if {"statements", "pairs", "chats"} & set(entry.formats):
        data = tuning_chats(f"builtin:{name}")
        assert data.chats and data.n_items == entry.items
    else:
        with pytest.raises(DataError, match="built-in tuning sets: facts, happy_sad"):
            tuning_chats(f"builtin:{name}")


def test_sweep_behavior_pairs_builtin_happy_sad() -> None:
    task = behavior_task("pairs:builtin:happy_sad", limit=3)
    assert task.name == "happy_sad"
    assert len(task.prompts) == 3


def test_resolver() -> None:
    assert resolve_data_path("some/file.csv") == "some/file.csv"
    assert resolve_data_path(Path("x.json")) == "x.json"
    assert resolve_data_path("cais/mmlu:anatomy", "mc") == "cais/mmlu:anatomy"
    assert resolve_data_path("builtin:facts", "statements") == str(BUILTIN_SETS["facts"].path)
    assert builtin_set("honesty_ab", "pairs").name == "honesty_ab"
    assert builtin_names("ab") == ("honesty_ab",)
    with pytest.raises(DataError, match="no built-in set holds harmful prompts"):
        resolve_data_path("builtin:nope", "harmful")
    with pytest.raises(DataError, match="built-in chats: deceptive_answers"):
        resolve_data_path("builtin:nope", "chats")
    with pytest.raises(ValueError, match="unknown data format"):
        resolve_data_path("builtin:facts", "nonsense")


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("caa:data/test_ab.json", (None, "caa", "data/test_ab.json")),
        ("refusal=CAA:builtin:honesty_ab", ("refusal", "caa", "builtin:honesty_ab")),
        (" mmlu : cais/mmlu:anatomy ", (None, "mmlu", "cais/mmlu:anatomy")),
        ("pairs:dir/a=b.jsonl", (None, "pairs", "dir/a=b.jsonl")),
    ],
)
def test_parse_source_spec(spec: str, expected: tuple[str | None, str, str]) -> None:
    assert parse_source_spec(spec, "--behavior") == expected


@pytest.mark.parametrize("spec", ["no-colon", "caa:", ":file.json", "name=caa", "=caa:x", "n=:x"])
def test_parse_source_spec_malformed(spec: str) -> None:
    with pytest.raises(DataError) as info:
        parse_source_spec(spec, "--behavior")
    assert str(info.value) == f"--behavior {spec!r}: expected KIND:PATH (or NAME=KIND:PATH)"


def test_builtin_format() -> None:
    assert builtin_format("builtin:facts", ("statements", "pairs")) == "statements"
    assert builtin_format("honesty_ab", ("statements", "pairs", "chats")) == "pairs"
    with pytest.raises(DataError) as info:
        builtin_format("builtin:general_text", ("statements", "pairs"), "tuning sets")
    message = str(info.value)
    assert message.startswith("builtin:general_text holds texts, not true/false statements or")
    assert message.endswith("built-in tuning sets: facts, happy_sad, honesty, honesty_ab")
    with pytest.raises(DataError, match="no such built-in set"):
        builtin_format("builtin:nope", ("pairs",))
