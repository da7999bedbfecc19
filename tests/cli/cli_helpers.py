"""What the CLI tests share: running the app in-process, reading its one-line errors, tiny
saved models and a pairs file. (Not a conftest: ``conftest`` is the name of tests/conftest.py,
which the test modules import.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner, Result

from conftest import make_model
from steerlab.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^Loading weights: +\d+%\|")
PAIRS = [
    {"prompt": "How are you?", "positive": "I am happy today.", "negative": "I feel sad."},
    {"prompt": "Tell me about your day.", "positive": "It was a good day.", "negative": "Gloomy."},
    {"positive": "The weather is lovely and bright.", "negative": "The sky is grey and cold."},
    {"prompt": "Mood?", "system": "Be brief.", "positive": "Happy!", "negative": "Sad."},
]


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run ``steerlab ARGS`` in-process."""
    return CliRunner().invoke(app, args, env=env)


def save_tiny(folder: Path, hidden: int = 32, layers: int = 3) -> Path:
    """A tiny random llama and its tokenizer saved in ``folder`` (right padding on purpose)."""
    model, tokenizer = make_model("llama", layers=layers, hidden=hidden)
    tokenizer.padding_side = "right"  # load_model must turn this back to left
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_pairs(path: Path) -> Path:
    """:data:`PAIRS` as a JSONL file at ``path``."""
    path.write_text("".join(json.dumps(row) + "\n" for row in PAIRS), encoding="utf-8")
    return path


def extract_args(model_dir: Path, pairs: Path, out: Path, *extra: str) -> list[str]:
    """``extract`` of a mean_diff vector from ``pairs`` into ``out``."""
    return [
        "extract",
        "--model",
        str(model_dir),
        "--pairs",
        str(pairs),
        "-o",
        str(out),
        "--method",
        "mean_diff",
        *extra,
    ]


def stderr_lines(result: Result) -> list[str]:
    """The non-empty stderr lines, without colour codes or transformers' loading bar."""
    lines = [ANSI.sub("", line) for line in result.stderr.strip().splitlines()]
    return [line for line in lines if line.strip() and not PROGRESS.search(line)]


def assert_one_line_error(result: Result, *needles: str) -> str:
    """The one ``error:`` line of a failed run (exit 1, no traceback), holding ``needles``."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error:"), line
    for needle in needles:
        assert needle in line, line
    return line


# -- representation tuning (tune, then eval) -------------------------------------------------

FAST = ["--max-steps", "2", "--batch-size", "4", "--lr", "1e-2", "--eval-fraction", "0"]


def tune_setup(root: Path) -> dict[str, Path]:
    """A tiny llama folder, a vector extracted from it, and a small facts file in ``root``."""
    from conftest import save_tiny_llama

    save_tiny_llama(root, "base", "honesty.safetensors")
    facts = root / "facts.csv"
    rows = [f"Fact number {i} holds.,{i % 2}" for i in range(40)]
    facts.write_text("statement,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (root / "nodata").mkdir()
    return {
        "root": root,
        "base": root / "base",
        "vector": root / "honesty.safetensors",
        "facts": facts,
        "nodata": root / "nodata",
    }


def tune_args(s: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """A quick ``tune`` of the facts on layers 1-2 into ``out``."""
    return [
        "tune",
        "--model",
        str(s["base"]),
        "--vector",
        str(s["vector"]),
        "--rep-layers",
        "1-2",
        "--data",
        str(s["facts"]),
        "-o",
        str(out),
        *FAST,
        *extra,
    ]
