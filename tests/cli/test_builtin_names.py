"""Every built-in data name through every CLI command that takes a data path (tiny models).

A set works wherever its format is read (``steerlab.data.registry``: pairs, A/B, multiple
choice, statements, texts, questions); a set of another format, or an unknown name, is one
line naming the sets that fit, exit code 1, and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error as one_line_error
from cli_helpers import invoke

from conftest import save_tiny_llama
from steerlab.data import BUILTIN_SETS, builtin_names


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-builtin")
    save_tiny_llama(root, "tiny", "v.safetensors")
    (root / "nodata").mkdir()
    return {"root": root, "model": root / "tiny", "vector": root / "v.safetensors"}


def _command(
    command: str, name: str, s: dict[str, Path], out: Path
) -> tuple[list[str], str | None]:
    """The CLI arguments reading ``builtin:NAME`` in ``command``, and the format read."""
    ref = f"builtin:{name}"
    model = ["--model", str(s["model"])]
    sweep = ["sweep", *model, "--vector", str(s["vector"]), "-o", str(out), "--limit", "2"]
    sweep += ["--coefficients=-1,1", "--no-estimates"]
    few = ["--limit", "2"]
    diff = ["diff", "--base", str(s["model"]), "--tuned", str(s["model"])]
    commands: dict[str, tuple[list[str], str | None]] = {
        "extract --pairs": (["extract", *model, "--pairs", ref, "-o", str(out), *few], "pairs"),
        "sweep --behavior pairs:": ([*sweep, "--behavior", f"pairs:{ref}"], "pairs"),
        "sweep --behavior caa:": ([*sweep, "--behavior", f"caa:{ref}"], "ab"),
        "sweep --helpfulness mmlu:": ([*sweep, "--helpfulness", f"mmlu:{ref}"], "mc"),
        "sweep --perplexity": ([*sweep, "--perplexity", ref], "texts"),
        "tune --data": (
            [
                "tune",
                *model,
                "--vector",
                str(s["vector"]),
                "--data",
                ref,
                "-o",
                str(out),
                "--max-steps",
                "1",
                "--limit",
                "8",
                "--eval-fraction",
                "0",
                "--batch-size",
                "4",
            ],
            "tuning",
        ),
        "matrix --prompts": (
            [
                "matrix",
                *model,
                "--vectors",
                str(s["vector"]),
                "--prompts",
                ref,
                "-o",
                str(out),
                "--limit",
                "1",
                "--normalized-coefficients",
                "0.1",
                "--raw-coefficients",
                "1",
                "--no-ablate",
                "--max-new-tokens",
                "2",
            ],
            "questions",
        ),
        "dataset qa --questions": (
            ["dataset", "qa", *model, "--questions", ref, "-o", str(out), *few[:1], "1"],
            "questions",
        ),
        "diff --prompts": (
            [*diff, "--prompts", ref, "-o", str(out), *few],
            "questions",
        ),
        "diff --chats": (
            [*diff, "--chats", ref, "-o", str(out), *few],
            "chats",
        ),
        "finetune --data": (
            ["finetune", *model, "--data", ref, "-o", str(out), "--max-steps", "1"],
            "chats",
        ),
        "dataset pairs --honest": (
            ["dataset", "pairs", "--honest", ref, "--deceptive", ref, "-o", str(out)],
            "qa",
        ),
    }
    return commands[command]


COMMANDS = [
    "extract --pairs",
    "sweep --behavior pairs:",
    "sweep --behavior caa:",
    "sweep --helpfulness mmlu:",
    "sweep --perplexity",
    "tune --data",
    "matrix --prompts",
    "dataset qa --questions",
    "diff --prompts",
    "diff --chats",
    "finetune --data",
    "dataset pairs --honest",
]


def _readable(name: str, data_format: str | None) -> bool:
    formats = BUILTIN_SETS[name].formats
    if data_format == "tuning":  # tune --data reads statements, pairs or chats
        return bool({"statements", "pairs", "chats"} & set(formats))
    return data_format in formats


@pytest.mark.parametrize("name", list(BUILTIN_SETS))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_builtin_name_in_every_command(
    setup: dict[str, Path], tmp_path: Path, command: str, name: str
) -> None:
    out = tmp_path / ("out.safetensors" if command.startswith(("extract", "diff")) else "out")
    if command.startswith("dataset"):
        out = tmp_path / "out.jsonl"
    args, data_format = _command(command, name, setup, out)
    result = invoke(args)
    if _readable(name, data_format):
        assert result.exit_code == 0, result.output
        assert out.exists()
        return
    line = one_line_error(result)
    assert f"builtin:{name} holds {BUILTIN_SETS[name].kind}" in line
    wanted = ("statements", "pairs") if data_format == "tuning" else (str(data_format),)
    for fitting in (n for f in wanted for n in builtin_names(f)):
        assert fitting in line
    assert not out.exists()


def test_eval_reads_every_builtin_evaluation_set(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["eval", "--models", str(setup["model"]), "--data-dir", str(setup["root"] / "nodata")]
    args += ["--facts", "builtin:facts", "--ab", "builtin:honesty_ab"]
    args += ["--text", "builtin:general_text", "--limit", "3", "--bootstrap", "10"]
    result = invoke([*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {row["dataset"] for row in rows} == {"facts", "honesty_ab", "general_text"}
    bad = invoke([*args[:-6], "--ab", "builtin:general_mc", "-o", str(tmp_path / "bad")])
    line = one_line_error(bad)
    assert "builtin:general_mc holds multiple-choice questions, not A/B questions" in line
    assert "honesty_ab" in line
    assert not (tmp_path / "bad").exists()


def test_unknown_builtin_name_lists_the_available_ones(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "v.safetensors"
    args = ["extract", "--model", str(setup["model"]), "--pairs", "builtin:nope", "-o", str(out)]
    line = one_line_error(invoke(args))
    assert "builtin:nope: no such built-in set" in line
    assert all(name in line for name in builtin_names("pairs"))
    assert not out.exists()
