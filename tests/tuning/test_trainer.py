"""The Trainer plumbing (steerlab.tuning.trainer): the loss-log callback and logged components.

Training through the trainer (extra loss terms, gradient accumulation) is tested end to end in
test_finetune.py and test_represent.py; these are the parts that need no training.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerControl, TrainerState, TrainingArguments

from steerlab.tuning import LossLogCallback, read_loss_log


def test_loss_log_callback_rewrites_then_appends(tmp_path: Path) -> None:
    path = tmp_path / "loss_log.jsonl"
    path.write_text('{"step": 9, "loss": 0.1}\n', encoding="utf-8")  # a stale log
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState()
    state.log_history = [{"loss": 2.0, "step": 1}]  # as restored from a checkpoint
    callback = LossLogCallback(path)
    callback.on_train_begin(args, state, TrainerControl())
    assert read_loss_log(path) == [{"step": 1, "loss": 2.0}]
    state.log_history.append({"step": 2, "loss": 1.5, "learning_rate": 1e-4})
    callback.on_log(args, state, TrainerControl())
    state.log_history.append({"step": 2, "train_runtime": 3.0})  # not a loss row
    callback.on_log(args, state, TrainerControl())
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"step": 1, "loss": 2.0},
        {"step": 2, "learning_rate": 1e-4, "loss": 1.5},
    ]
    assert list(rows[1]) == ["step", "learning_rate", "loss"]


def test_loss_log_callback_writes_only_on_the_main_process(tmp_path: Path) -> None:
    path = tmp_path / "loss_log.jsonl"
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState(is_world_process_zero=False)
    state.log_history = [{"loss": 2.0, "step": 1}]
    callback = LossLogCallback(path)
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl())
    assert not path.exists()
