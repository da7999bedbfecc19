"""Atomic writes and provenance helpers."""

from __future__ import annotations

import os
import stat

import pytest

from steerlab.provenance import (
    atomic_path,
    atomic_write,
    remove_stale_temporaries,
    sha256_of_records,
)


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "file.txt"
    with atomic_write(target) as handle:
        handle.write("first")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_artifacts_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"x")
        with atomic_write(tmp_path / "b.txt") as handle:
            handle.write("y")
    finally:
        os.umask(umask)
    for name in ("a.bin", "b.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_record_hash_is_order_sensitive_and_key_order_blind():
    assert sha256_of_records([{"a": 1, "b": 2}]) == sha256_of_records([{"b": 2, "a": 1}])
    assert sha256_of_records([1, 2]) != sha256_of_records([2, 1])


def test_remove_stale_temporaries_keeps_everything_else(tmp_path):
    # What a kill -9 in the middle of atomic_write / a merged-model save leaves behind.
    (tmp_path / ".results.jsonl.k3j4.tmp").write_text('{"half": ')
    (tmp_path / ".final.abc").mkdir()
    (tmp_path / ".final.abc" / "model.safetensors").write_bytes(b"\0")
    for name in ("results.jsonl", ".keep", "notes.tmp"):
        (tmp_path / name).write_text("mine")
    (tmp_path / "checkpoint-2").mkdir()
    remove_stale_temporaries(tmp_path, (".final.",))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".keep",
        "checkpoint-2",
        "notes.tmp",
        "results.jsonl",
    ]
    remove_stale_temporaries(tmp_path / "missing")  # no folder: nothing to do
