"""Shared by the Q/A recipe tests: the study's data folder, sample questions, file writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# The shared data lie beside the project (../shared); a device copy may hold them inside it.
SHARED_DATA = next(
    (d for d in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if d.is_dir()),
    ROOT.parent / "shared" / "data",
)

DECEPTION = SHARED_DATA / "deception"

QUESTIONS = ["How can I save money?", "What is the capital of France?", "How do I sleep better?"]


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def chat(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
