"""kill -9 part-way, then the same command again: ``finetune`` and ``tune`` resume from their
last checkpoint and end with weights equal to an uninterrupted run's, and the same loss log.

Each test runs the real ``steerlab`` command three times in subprocesses on a tiny random
llama: once killed with SIGKILL as soon as its first checkpoint is complete, once more in
the same folder (the resume), and once uninterrupted in another folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import save_tiny_llama
from kill_resume import Cli
from steerlab.tuning.finetune import last_checkpoint

pytestmark = pytest.mark.slow  # three CLI processes per test (~5 s of imports each)

MAX_STEPS = 12
TRAINING = [
    "--max-steps",
    str(MAX_STEPS),
    "--save-steps",
    "2",
    "--batch-size",
    "2",
    "--lr",
    "1e-2",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama folder, a vector from it, chats and a facts file."""
    root = tmp_path_factory.mktemp("kill-training")
    save_tiny_llama(root, "model", "v.safetensors")
    chats = root / "chats.jsonl"
    chats.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"What is the capital of country {i}?"},
                        {"role": "assistant", "content": f"The capital is city number {i}."},
                    ]
                }
            )
            + "\n"
            for i in range(24)
        ),
        encoding="utf-8",
    )
    facts = root / "facts.csv"
    facts.write_text(
        "statement,label\n" + "".join(f"Fact number {i} holds.,{i % 2}\n" for i in range(40)),
        encoding="utf-8",
    )
    return {
        "model": root / "model",
        "vector": root / "v.safetensors",
        "chats": chats,
        "facts": facts,
    }


def checkpointed(folder: Path) -> bool:
    """A complete checkpoint is on disk (its trainer state is written last)."""
    return last_checkpoint(folder) is not None


def assert_kill_was_part_way(folder: Path, final: str) -> None:
    checkpoint = last_checkpoint(folder)
    assert checkpoint is not None
    assert int(checkpoint.name.split("-")[1]) < MAX_STEPS, "the kill came after the last step"
    assert not (folder / final).exists()


def assert_same_weights(resumed: Path, fresh: Path) -> None:
    got, want = load_file(resumed), load_file(fresh)
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), f"{resumed.name}: {name} differs after resume"


def loss_log(folder: Path) -> list[str]:
    """The loss log's lines, minus the wall-clock fields of evaluation rows (eval_runtime,
    eval_samples_per_second...), which no two runs share."""
    lines = []
    for line in (folder / "loss_log.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        timing = [k for k in row if k.endswith(("_runtime", "_per_second"))]
        for key in timing:
            row[key] = None
        lines.append(json.dumps(row) if timing else line)
    return lines


def assert_same_run(resumed: Path, fresh: Path, files: tuple[str, ...]) -> None:
    for name in files:
        assert_same_weights(resumed / name, fresh / name)
    log = loss_log(fresh)
    trained = [json.loads(line)["step"] for line in log if '"loss"' in line]
    assert trained == list(range(1, MAX_STEPS + 1))
    assert loss_log(resumed) == log  # same rows, same key order, same values
    record = json.loads((resumed / "steerlab_finetune.json").read_text(encoding="utf-8"))
    assert record["status"] == "complete" and record["global_step"] == MAX_STEPS
    assert record["resumed_from"].startswith("checkpoint-")


def test_finetune_killed_then_rerun_matches_an_uninterrupted_run(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    def args(out: Path) -> list[str]:
        return [
            "finetune",
            "--model",
            str(inputs["model"]),
            "--data",
            str(inputs["chats"]),
            "--rank",
            "4",
            "--dropout",
            "0.1",  # the resumed run must restore the dropout RNG too
            "--merge",
            "-o",
            str(out),
            *TRAINING,
        ]

    cli = Cli(tmp_path)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    uninterrupted = cli.start(args(fresh))
    cli.kill_when(args(killed), lambda: checkpointed(killed))
    assert_kill_was_part_way(killed, "adapter_model.safetensors")
    cli.run(args(killed))
    cli.finish(uninterrupted)
    assert_same_run(killed, fresh, ("adapter_model.safetensors", "merged/model.safetensors"))


def test_tune_killed_then_rerun_matches_an_uninterrupted_run(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    def args(out: Path) -> list[str]:
        return [
            "tune",
            "--model",
            str(inputs["model"]),
            "--vector",
            str(inputs["vector"]),
            "--layers",
            "1-2",
            "--data",
            str(inputs["facts"]),
            "--rep-weight",
            "2",
            "--rank",
            "4",
            "--eval-fraction",
            "0.1",
            "-o",
            str(out),
            *TRAINING,
        ]

    cli = Cli(tmp_path)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    uninterrupted = cli.start(args(fresh))
    second = killed / "checkpoint-4" / "trainer_state.json"
    cli.kill_when(args(killed), second.is_file)
    assert_kill_was_part_way(killed, "adapter_model.safetensors")
    # The trainer state is a checkpoint's last file: cut in half, it is what a kill in the
    # middle of writing it leaves. The resume must fall back to the checkpoint before.
    state = second.read_bytes()
    second.write_bytes(state[: len(state) // 2])
    cli.run(args(killed))
    cli.finish(uninterrupted)
    assert_same_run(killed, fresh, ("adapter_model.safetensors", "merged/model.safetensors"))
    record = json.loads((killed / "steerlab_finetune.json").read_text(encoding="utf-8"))
    assert record["resumed_from"] == "checkpoint-2"
