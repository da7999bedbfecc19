"""What the runner tests share: tiny saved models, a pairs file, specs written from Python data,
and readers of what a run left (stage files, folders, the console's output).

A spec is built from Python data (:func:`write_spec`) so that a test says what it changes
(``stages["gen"]["max_new_tokens"] = 6``) rather than repeating YAML; the invalid specs, whose
line numbers matter, are written out as text in bad_specs.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from conftest import make_model

PAIRS = [
    {"prompt": "How are you?", "positive": "I am happy today.", "negative": "I feel sad."},
    {"prompt": "Tell me about your day.", "positive": "It was a good day.", "negative": "Gloomy."},
    {"positive": "The weather is lovely and bright.", "negative": "The sky is grey and cold."},
    {"prompt": "Mood?", "system": "Be brief.", "positive": "Happy!", "negative": "Sad."},
]


def save_model(folder: Path, arch: str = "llama", layers: int = 2, hidden: int = 32) -> Path:
    """A tiny random model of ``arch`` and its tokenizer saved in ``folder`` (``--model`` form)."""
    model, tokenizer = make_model(arch, layers=layers, hidden=hidden)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_pairs(path: Path, rows: list[dict[str, str]] | None = None) -> Path:
    """Contrastive pairs (default :data:`PAIRS`) as a JSONL file at ``path``."""
    rows = PAIRS if rows is None else rows
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def spec_text(stages: dict[str, dict[str, Any]], models: dict[str, Any], **top: Any) -> str:
    """A spec as YAML: ``top`` keys (name, seed...), then ``models``, then ``stages``."""
    document = {**top, "models": models, "stages": stages}
    return yaml.safe_dump(document, sort_keys=False)


def write_spec(
    path: Path, stages: dict[str, dict[str, Any]], models: dict[str, Any], **top: Any
) -> Path:
    """:func:`spec_text` written to ``path``."""
    path.write_text(spec_text(stages, models, **top), encoding="utf-8")
    return path


def mood_stages(model: str = "base", pairs: str = "pairs.jsonl") -> dict[str, dict[str, Any]]:
    """The small study most tests run: two vectors (pairs from a file and built-in ones),
    steered generations with the first, and the cosine of the two per layer."""
    return {
        "mood": {"kind": "extract", "model": model, "pairs": pairs, "method": "mean_diff"},
        "happy": {
            "kind": "extract",
            "model": model,
            "pairs": "builtin:happy_sad",
            "limit": 4,
            "method": "mean_diff",
        },
        "gen": {
            "kind": "generate",
            "model": model,
            "vector": "mood",
            "prompts": ["How are you?", "Tell me about your day."],
            "coefficients": [-1, 0, 1],
            "max_new_tokens": 4,
        },
        "cmp": {"kind": "compare", "vectors": ["mood", "happy"]},
    }


def quiet() -> Console:
    """A console that records what the runner prints (``.file.getvalue()``), wide and plain."""
    return Console(file=io.StringIO(), width=200, color_system=None, force_terminal=False)


def printed(console: Console) -> str:
    """What :func:`quiet`'s console received."""
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def stage_files(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``run_dir/stages``: relative path -> (bytes, mtime in ns)."""
    stages = run_dir / "stages"
    return {
        str(path.relative_to(stages)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(stages.rglob("*"))
        if path.is_file()
    }


def stage_folders(run_dir: Path) -> list[str]:
    """The names of the stage folders (``NAME-KEY12``) of a run folder, sorted."""
    stages = run_dir / "stages"
    return sorted(p.name for p in stages.iterdir()) if stages.is_dir() else []
