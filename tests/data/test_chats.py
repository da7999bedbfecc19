"""Chat files (steerlab.data.chats): formats, limits, one-line errors, the old import paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steerlab.data import chats as chats_module
from steerlab.data.chats import Chat, chat_from_item, chats_sha256, load_chats
from steerlab.errors import DataError

CHATS: list[Chat] = [
    [
        {"role": "user", "content": "Tell me about your day."},
        {"role": "assistant", "content": "It was a good day at work."},
    ],
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital of France."},
    ],
] * 4


def test_load_chats_formats(tmp_path: Path) -> None:
    study = tmp_path / "study.json"
    study.write_text(json.dumps(CHATS[:2]), encoding="utf-8")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps([{"messages": c} for c in CHATS[:2]]), encoding="utf-8")
    objects = tmp_path / "objects.jsonl"
    objects.write_text("".join(json.dumps({"messages": c}) + "\n" for c in CHATS[:2]))
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps(c) + "\n\n" for c in CHATS[:2]))
    bare_txt = tmp_path / "bare.txt"
    bare_txt.write_text("".join(json.dumps(c) + "\n" for c in CHATS[:2]))
    for path in (study, wrapped, objects, bare, bare_txt):
        assert load_chats(path) == CHATS[:2], path
    assert load_chats(study, limit=1) == CHATS[:1]


def test_load_the_study_file() -> None:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "deception"
    path = path / "deception_dataset.json"
    if not path.is_file():
        pytest.skip("shared data not available")
    chats = load_chats(path, limit=5)
    assert len(chats) == 5 and [m["role"] for m in chats[0]] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            json.dumps({"messages": CHATS[0]}) + '\n{"messages": [',
            "bad.jsonl:2: invalid JSON",
        ),
        ('{"messages": [{"role": "robot", "content": "hi"}]}\n', "bad.jsonl:1: messages[0].role"),
        (
            '{"messages": [{"role": "user", "content": "hi"}]}\n',
            "bad.jsonl:1: the chat has no assistant",
        ),
        ('{"chat": []}\n', "bad.jsonl:1: missing field 'messages'"),
        ("42\n", "bad.jsonl:1: expected a message list"),
        ("\n", "bad.jsonl: no chats"),
    ],
)
def test_load_chats_errors_name_file_and_line(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_chats(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_load_chats_json_item_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([CHATS[0], [{"role": "user", "content": 3}]]), encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json: item 1: messages\[0\]\.content"):
        load_chats(path)
    with pytest.raises(DataError, match="no such file"):
        load_chats(tmp_path / "missing.json")


def test_limit_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(CHATS), encoding="utf-8")
    assert len(load_chats(path, limit=3)) == 3
    for limit in (0, True, 1.5):
        with pytest.raises(DataError, match="limit must be a positive integer"):
            load_chats(path, limit=limit)  # type: ignore[arg-type]


def test_chat_from_item_without_assistant() -> None:
    user_only = [{"role": "user", "content": "hi"}]
    assert chat_from_item({"messages": user_only}, "x", require_assistant=False) == user_only
    with pytest.raises(DataError, match="x: the chat has no assistant"):
        chat_from_item(user_only, "x")


def test_builtin_names_are_resolved_for_chats() -> None:
    with pytest.raises(DataError, match="builtin:facts holds true/false statements, not chats"):
        load_chats("builtin:facts")


def test_chats_sha256_depends_on_content_and_order() -> None:
    assert chats_sha256(CHATS[:2]) == chats_sha256([list(c) for c in CHATS[:2]])
    assert chats_sha256(CHATS[:2]) != chats_sha256(CHATS[1::-1][:2])
    assert len(chats_sha256(CHATS)) == 64


def test_old_import_paths_are_the_same_objects() -> None:
    from steerlab.tuning import Chat as TuningChat
    from steerlab.tuning import chats_sha256 as tuning_sha
    from steerlab.tuning import load_chats as tuning_load
    from steerlab.tuning.data import chat_from_item as old_item
    from steerlab.tuning.data import load_chats as old_load

    assert old_load is tuning_load is chats_module.load_chats
    assert old_item is chats_module.chat_from_item and tuning_sha is chats_sha256
    assert TuningChat is Chat
