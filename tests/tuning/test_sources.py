"""Training chats for representation tuning from statements, pairs and chats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steerlab.data.honesty import HonestyTemplates, held_out
from steerlab.errors import DataError, SpecError
from steerlab.tuning.sources import detect_kind, tuning_chats


def _facts(tmp_path: Path) -> Path:
    path = tmp_path / "facts.csv"
    rows = ["statement,label"] + [f"Statement number {i} is here.,{i % 2}" for i in range(60)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_facts_leave_out_the_held_out_statements(tmp_path: Path) -> None:
    path = _facts(tmp_path)
    data = tuning_chats(path)
    held = [i for i in range(60) if held_out(f"Statement number {i} is here.")]
    assert data.kind == "facts"
    assert data.n_items == 60 and data.n_held_out == len(held) > 0
    assert len(data.chats) == 2 * (60 - len(held))  # honest and dishonest instruction each
    users = {chat[-2]["content"] for chat in data.chats}
    for i in held:
        assert not any(f"number {i} is" in u for u in users)
    assert "held out" in data.describe()


def test_facts_completions_follow_the_option(tmp_path: Path) -> None:
    path = _facts(tmp_path)
    honest = tuning_chats(path, include_held_out=True, instructions="honest")
    dishonest = tuning_chats(path, include_held_out=True, completions="dishonest")
    templates = HonestyTemplates()
    assert len(honest.chats) == 60 and honest.n_held_out == 0
    # Statement 1 is true (label 1), statement 0 false.
    assert honest.chats[1][-1]["content"] == templates.answer(True)
    assert honest.chats[0][-1]["content"] == templates.answer(False)
    # "dishonest" completions lie whatever the instruction: statement 1 (true) -> False.
    assert dishonest.chats[2][-1]["content"] == templates.answer(False)


def test_pairs_take_positive_or_negative_replies(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    records = [
        {"prompt": f"q{i}", "positive": f"good {i}", "negative": f"bad {i}"} for i in range(3)
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    assert detect_kind(path) == "pairs"
    toward = tuning_chats(path)
    away = tuning_chats(path, completions="dishonest")
    assert toward.chats[0] == (
        [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "good 0"}]
    )
    assert away.chats[2][-1] == {"role": "assistant", "content": "bad 2"}
    with pytest.raises(SpecError, match="matching"):
        tuning_chats(path, completions="matching")


def test_builtin_sources() -> None:
    assert detect_kind("builtin:facts") == "facts"
    assert detect_kind("builtin:honesty") == "pairs"
    facts = tuning_chats("builtin:facts")
    assert facts.n_items == 120 and 0 < facts.n_held_out < 60
    pairs = tuning_chats("builtin:honesty", limit=5)
    assert len(pairs.chats) == 5
    with pytest.raises(DataError, match="nope"):
        tuning_chats("builtin:nope")


def test_chats_are_used_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    path.write_text(json.dumps({"messages": chat}) + "\n", encoding="utf-8")
    data = tuning_chats(path)
    assert data.kind == "chats" and list(data.chats) == [chat]


def test_bad_sources_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        tuning_chats(tmp_path / "missing.csv")
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"x": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"odd\.jsonl"):
        tuning_chats(odd)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl:2"):
        tuning_chats(broken)
    with pytest.raises(SpecError, match="kind"):
        tuning_chats(odd, kind="table")
