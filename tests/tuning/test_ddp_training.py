"""Two processes (DDP, gloo on CPU) train like one: ``finetune`` and ``tune`` under ``torchrun``
and ``accelerate launch`` give the loss curve of a single process with the same global
``--batch-size``, resume, and write the run folder once; representation-only mode leaves
what follows the deepest cosine layer untouched; bad input is one line and exit 1 on every
rank.

Each run is the real command in subprocesses on a tiny random llama (3 layers, hidden 32),
one thread per process. Tolerance: the curves agree to ``rel=1e-4`` (seen: ~1e-7), not
exactly, because each process pads its half of a batch to its own longest chat, and the
gradient all-reduce and the loss reductions add in another order than one process does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import save_tiny_llama
from launching import launch

pytestmark = pytest.mark.slow  # two-process launches (~10 s of imports each)

TOLERANCE = {"rel": 1e-4, "abs": 1e-6}
TRAINING = ["--batch-size", "4", "--lr", "1e-2", "--max-length", "64", "--no-resume"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama folder, a vector from it, and 16 chats of different lengths."""
    root = tmp_path_factory.mktemp("ddp-training")
    save_tiny_llama(root, "model", "v.safetensors")
    chats = root / "chats.jsonl"
    lines = []
    for i in range(16):
        reply = "It was a good day at work" + " and then more" * (i % 4) + f", number {i}."
        messages = [
            {"role": "user", "content": f"Tell me about day {i}."},
            {"role": "assistant", "content": reply},
        ]
        lines.append(json.dumps({"messages": messages}) + "\n")
    chats.write_text("".join(lines), encoding="utf-8")
    return {"root": root, "model": root / "model", "vector": root / "v.safetensors", "chats": chats}


def losses(folder: Path) -> list[tuple[int, float, float]]:
    """(step, loss, grad_norm) of each training row of the run's loss log."""
    rows = [json.loads(line) for line in (folder / "loss_log.jsonl").read_text().splitlines()]
    return [(row["step"], row["loss"], row["grad_norm"]) for row in rows if "loss" in row]


def assert_same_curve(one: Path, two: Path, steps: int) -> None:
    expected, got = losses(one), losses(two)
    assert [row[0] for row in got] == [row[0] for row in expected] == list(range(1, steps + 1))
    for (step, loss, norm), (_, loss2, norm2) in zip(expected, got, strict=True):
        assert loss2 == pytest.approx(loss, **TOLERANCE), step
        assert norm2 == pytest.approx(norm, **TOLERANCE), step


def assert_written_once(folder: Path, output: str) -> None:
    """The run folder is complete and tidy, and the summary was printed by one process."""
    record = json.loads((folder / "steerlab_finetune.json").read_text())
    assert record["status"] == "complete"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert output.count("loss log:") == 1, output


def test_finetune_two_processes_match_one_and_resume(inputs: dict[str, Path]) -> None:
    root = inputs["root"]
    common = ["finetune", "-d", str(inputs["chats"]), "-m", str(inputs["model"]), *TRAINING]
    common += ["--lr-scheduler", "constant"]  # stopping at 2 of 4 steps leaves the same lr
    launch(
        "single", [*common, "-o", "one", "--max-steps", "4", "--save-steps", "2"], root, cwd=root
    )
    # Two processes, stopped after 2 steps, then resumed to 4 (the same command, 4 steps).
    two = [*common, "-o", "two", "--save-steps", "2"]
    launch("torchrun", [*two, "--max-steps", "2"], root, cwd=root)
    resumed = [arg for arg in two if arg != "--no-resume"]
    done = launch("torchrun", [*resumed, "--max-steps", "4"], root, cwd=root)
    assert "resumed from checkpoint-2" in done.stdout
    assert_same_curve(root / "one", root / "two", steps=4)
    assert_written_once(root / "two", done.stdout)
    weights_one = load_file(root / "one" / "adapter_model.safetensors")
    weights_two = load_file(root / "two" / "adapter_model.safetensors")
    # Adam's step is g / sqrt(v) element by element: where a gradient is of the order of
    # the rounding, the two runs' steps differ by a small part of lr (1e-2), not more.
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-3, atol=1e-4)


def test_tune_representation_only_under_accelerate(inputs: dict[str, Path]) -> None:
    """Layers 0-1 trained on the cosine at layer 1 alone: layer 2 and the head get no
    gradient (frozen), the run completes on both ranks and matches one process."""
    root = inputs["root"]
    args = ["tune", "-v", str(inputs["vector"]), "-m", str(inputs["model"]), *TRAINING]
    args += ["-d", str(inputs["chats"]), "--rep-only", "--rep-layers", "1"]
    args += ["--train-layers", "0,1", "--positions", "answer", "--max-steps", "3"]
    launch("single", [*args, "-o", "rep-one"], root, cwd=root)
    done = launch("accelerate", [*args, "-o", "rep-two"], root, cwd=root)
    assert_same_curve(root / "rep-one", root / "rep-two", steps=3)
    assert_written_once(root / "rep-two", done.stdout)
    base = load_file(inputs["model"] / "model.safetensors")
    tuned = load_file(root / "rep-two" / "model.safetensors")
    unchanged = [name for name in base if "layers.0." not in name and "layers.1." not in name]
    assert any("layers.2." in name for name in unchanged) and "lm_head.weight" in unchanged
    for name in unchanged:
        assert torch.equal(tuned[name], base[name]), name
    assert not torch.equal(
        tuned["model.layers.1.mlp.down_proj.weight"], base["model.layers.1.mlp.down_proj.weight"]
    )


def test_bad_input_is_one_line_and_exit_1_on_every_rank(inputs: dict[str, Path]) -> None:
    root = inputs["root"]
    args = ["finetune", "-d", str(inputs["chats"]), "-m", str(inputs["model"]), "-o", "bad"]
    done = launch("torchrun", [*args, "--batch-size", "3"], root, succeed=False, cwd=root)
    assert done.returncode != 0
    # One line from each rank (counted in the text: two processes writing to one pipe at
    # once can run their lines together).
    assert done.stderr.count("error: ") == 2, done.stderr
    assert done.stderr.count("--batch-size 3") == 2 and done.stderr.count("2 processes") >= 2
    assert done.stderr.count("exitcode  : 1") + done.stderr.count("exitcode: 1") >= 1
    assert not (root / "bad").exists()
