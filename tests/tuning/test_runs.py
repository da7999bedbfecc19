"""A run folder's files: the typed provenance reader, the loss log, checkpoints, resumption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from steerlab.errors import DataError, SpecError
from steerlab.tuning import PROVENANCE_FILE, RunRecord, read_run
from steerlab.tuning.runs import (
    check_output_dir,
    check_resumable,
    fingerprint,
    last_checkpoint,
    log_rows,
    read_loss_log,
    write_loss_log,
    write_record,
)

RECORD: dict[str, Any] = {
    "kind": "represent",
    "status": "complete",
    "method": "lora",
    "base_model": "default",
    "data_sha256": "abc",
    "target_modules": ["q_proj", "v_proj"],
    "trained_layers": [],
    "config": {"rank": 8, "alpha": 16.0, "max_length": 256},
    "representation": {"layers": [3, 5], "rep_weight": 1.0},
    "data_source": {"source": "builtin:facts", "kind": "facts"},
}


def test_read_run_present(tmp_path: Path) -> None:
    write_record(tmp_path / PROVENANCE_FILE, RECORD)
    run = read_run(tmp_path)
    assert isinstance(run, RunRecord)
    assert run.folder == tmp_path
    assert (run.kind, run.status, run.base_model, run.method) == (
        "represent",
        "complete",
        "default",
        "lora",
    )
    assert run.trained_layers == () and run.target_modules == ("q_proj", "v_proj")
    assert run.representation_layers == (3, 5)
    assert run.data_source == {"source": "builtin:facts", "kind": "facts"}
    assert run.raw == RECORD
    with pytest.raises(AttributeError):
        run.method = "layers"  # type: ignore[misc]


def test_read_run_plain_finetune(tmp_path: Path) -> None:
    record = {k: v for k, v in RECORD.items() if k not in ("representation", "data_source")}
    write_record(tmp_path / PROVENANCE_FILE, {**record, "method": "layers", "trained_layers": [1]})
    run = read_run(str(tmp_path))
    assert run is not None
    assert run.representation_layers is None and run.data_source is None
    assert run.trained_layers == (1,) and run.method == "layers"


def test_read_run_absent(tmp_path: Path) -> None:
    assert read_run(tmp_path) is None
    assert read_run(tmp_path / "missing") is None
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    assert read_run(tmp_path) is None  # a model folder, not a run folder


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", r"steerlab_finetune\.json:1: invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (json.dumps({**RECORD, "base_model": 3}), "field 'base_model' is not a string"),
        (json.dumps({k: v for k, v in RECORD.items() if k != "method"}), "missing field 'method'"),
        (json.dumps({**RECORD, "trained_layers": [-1]}), "'trained_layers' is not a list of layer"),
        (json.dumps({**RECORD, "representation": {"layers": "3"}}), "representation.layers"),
        (json.dumps({**RECORD, "representation": [3]}), "'representation' is not an object"),
        (json.dumps({**RECORD, "data_source": "facts"}), "'data_source' is not an object"),
    ],
)
def test_read_run_corrupt(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / PROVENANCE_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=needle) as info:
        read_run(tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_read_run_not_utf8(tmp_path: Path) -> None:
    (tmp_path / PROVENANCE_FILE).write_bytes(b"\xff\xfe{")
    with pytest.raises(DataError, match="not UTF-8"):
        read_run(tmp_path)


def test_loss_log_rows_in_one_key_order(tmp_path: Path) -> None:
    history = [
        {"loss": 1.5, "step": 1, "epoch": 0.5},
        {"learning_rate": 1e-4, "step": 2},  # no loss: not a row
        {"eval_loss": 1.2, "step": 2},
    ]
    rows = log_rows(history)
    assert [list(row) for row in rows] == [["step", "epoch", "loss"], ["step", "eval_loss"]]
    write_loss_log(tmp_path / "loss_log.jsonl", history)
    assert read_loss_log(tmp_path) == rows


def test_last_checkpoint_skips_torn_state(tmp_path: Path) -> None:
    assert last_checkpoint(tmp_path / "missing") is None
    for step, state in ((2, "{}"), (4, '{"cut'), (3, "{}")):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(state, encoding="utf-8")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-3"


def test_resumption_checks(tmp_path: Path) -> None:
    check_output_dir(tmp_path)
    check_resumable(tmp_path, RECORD)  # nothing there yet
    write_record(tmp_path / PROVENANCE_FILE, RECORD)
    check_resumable(tmp_path, {**RECORD, "status": "running", "seed": 3})
    with pytest.raises(SpecError, match=r"another representation\.layers \(\[3, 5\], now \[3\]\)"):
        check_resumable(tmp_path, {**RECORD, "representation": {"layers": [3]}})
    layers = {**RECORD, "method": "layers", "config": {"rank": 4, "max_length": 256}}
    assert "rank" not in fingerprint(layers)
    other = tmp_path / "model"
    other.mkdir()
    (other / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SpecError, match="not a steerlab fine-tune"):
        check_output_dir(other)
    (tmp_path / PROVENANCE_FILE).write_text("{torn", encoding="utf-8")
    check_resumable(tmp_path, RECORD)  # an unreadable record is not compared
