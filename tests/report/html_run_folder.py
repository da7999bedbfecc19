"""A synthetic run folder, as ``steerlab run`` writes it, for the HTML report's tests.

Four stages: ``mood`` (extract, ran), ``sweep`` (cached; numbers with CIs and a NaN, two
matplotlib SVG plots, generations, text), ``judge`` (failed, no stage.json) and ``export``
(pending). The spec, a generation and an error hold markup and URLs that must stay text.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from steerlab.report.style import new_figure, plot_style, save_figure

SPEC_TEXT = """\
name: synthetic <study> & co
# from https://example.org/paper.pdf
stages:
  mood: {kind: extract, dataset: mood}
  sweep: {kind: sweep, vector: mood, coefficients: [-0.1, 0, 0.1]}
  judge: {kind: eval, model: sweep}
  export: {kind: export, vector: mood}
"""

STAGES = ("mood", "sweep", "judge", "export")

RESOLVED = {"name": "synthetic <study> & co", "seed": 7, "stages": {"mood": {"layers": [3, 4]}}}

GENERATIONS = [
    {"prompt": "Tell me about your day.", "column": "-0.1", "text": "It was grey <and> dull."},
    {"prompt": "Tell me about your day.", "column": "0", "text": "It was fine."},
    {"prompt": "Tell me about your day.", "column": "+0.1", "text": "Wonderful & bright!"},
    {"prompt": "Describe the weather.", "column": "0", "text": "Mild, see https://x.test/w"},
    {"prompt": "Describe the weather.", "column": "+0.1", "text": "Glorious sunshine."},
]


def _plot(base: Path, title: str, xs: list[float], ys: list[float]) -> str:
    """A small line plot saved as SVG (and PNG) under ``base``; the SVG's file name."""
    with plot_style():
        fig, ax = new_figure()
        ax.plot(xs, ys, marker="o", label=title)
        ax.set_title(title)
        ax.set_xlabel("coefficient λ")
        ax.legend()
        paths = save_figure(fig, base, title)
    return paths[1].name


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def _stage_json(name: str, kind: str, key: str, wall_s: float, summary: dict[str, Any]) -> dict:
    return {
        "format": "steerlab-stage/1",
        "name": name,
        "kind": kind,
        "key": key,
        "settings": {"kind": kind, "seed": 7},
        "inputs": {},
        "library_version": "0.test",
        "finished": "2026-12-01T10:01:00+00:00",
        "wall_s": wall_s,
        "summary": summary,
    }


def make_run(run_dir: Path) -> Path:
    """Write the synthetic run folder at ``run_dir``; return ``run_dir``."""
    keys = {name: hashlib.sha256(name.encode()).hexdigest() for name in STAGES}
    folders = {name: f"stages/{name}-{keys[name][:12]}" for name in keys}
    mood = run_dir / folders["mood"]
    mood.mkdir(parents=True)
    (mood / "vector.safetensors").write_bytes(b"not really")
    cos_svg = _plot(mood / "cosine", "cosine per layer", [0, 1, 2, 3], [0.2, 0.5, 0.8, 0.9])
    _write(
        mood / "stage.json",
        _stage_json(
            "mood", "extract", keys["mood"], 12.34,
            {
                "headline": "A mood direction, clearest at layers 3-4.",
                "numbers": [{"label": "layers", "value": 4, "unit": ""}],
                "tables": [{"title": "cosine per layer", "columns": ["layer", "cos"],
                            "rows": [[0, 0.2], [1, 0.5], [2, 0.8], [3, 0.9123456]]}],
                "plots": [{"title": "cosine per layer", "path": cos_svg}],
                "files": [{"label": "vector", "path": "vector.safetensors", "bytes": 10}],
            },
        ),
    )  # fmt: skip
    sweep = run_dir / folders["sweep"]
    sweep.mkdir(parents=True)
    behaviour = _plot(
        sweep / "behavior", "behaviour vs coefficient", [-0.1, 0, 0.1], [0.1, 0.4, 0.9]
    )
    fluency = _plot(sweep / "fluency", "perplexity (fluency)", [-0.1, 0, 0.1], [9.0, 5.0, 8.0])
    _write(
        sweep / "stage.json",
        _stage_json(
            "sweep", "sweep", keys["sweep"], 81.2,
            {
                "headline": "Steering moves the mood; fluency holds up to ±0.1.",
                "numbers": [
                    {"label": "Δλ (tanh fit)", "value": 0.41, "low": 0.30, "high": 0.52},
                    {"label": "slope at 0", "value": None, "low": None, "high": None},
                    {"label": "rate at +0.1", "value": 0.9, "low": 0.8, "high": 0.97, "unit": "%"},
                ],
                "tables": [{"title": "rates", "columns": ["coefficient", "rate", "note"],
                            "rows": [[-0.1, 0.1, "low"], [0.0, 0.4, None], [0.1, 0.9, "<high>"]]}],
                "plots": [{"title": "behaviour vs coefficient", "path": behaviour},
                          {"title": "fluency", "path": fluency},
                          {"title": "behaviour again", "path": behaviour}],
                "generations": GENERATIONS,
                "text": ["tanh fit: a=0.41 b=3.2", "R² = 0.97"],
                "files": [{"label": "results", "path": "results.jsonl"}],
            },
        ),
    )  # fmt: skip
    run = {
        "format": "steerlab-run/1",
        "name": "synthetic <study> & co",
        "description": "A made-up study <for tests>.",
        "spec_file": "examples/synthetic.yaml",
        "spec_text": SPEC_TEXT,
        "spec_sha256": "ab" * 32,
        "resolved": RESOLVED,
        "seed": 7,
        "provenance": {"library_version": "0.test", "git_revision": "c0ffee" * 6 + "1234",
                       "python": "3.11.7", "torch": "2.13.0", "transformers": "5.24.0",
                       "machine": "Linux x86_64", "cpu_count": 2, "hostname": "lab",
                       "created": "2026-12-01T10:00:00+00:00"},
        "started": "2026-12-01T10:00:00+00:00",
        "finished": None,
        "stages": [
            {"name": "mood", "kind": "extract", "key": keys["mood"], "folder": folders["mood"],
             "depends_on": [], "status": "ran", "wall_s": 12.34, "error": None},
            {"name": "sweep", "kind": "sweep", "key": keys["sweep"], "folder": folders["sweep"],
             "depends_on": ["mood"], "models": ["base"], "status": "cached", "wall_s": 81.2,
             "error": None},
            {"name": "judge", "kind": "eval", "key": keys["judge"], "folder": folders["judge"],
             "depends_on": ["sweep"], "status": "failed", "wall_s": 3.0,
             "error": "DataError: judge.jsonl:3: <bad> row"},
            {"name": "export", "kind": "export", "key": keys["export"],
             "folder": folders["export"], "depends_on": ["mood"], "status": "pending",
             "wall_s": None, "error": None},
        ],
    }  # fmt: skip
    _write(run_dir / "run.json", run)
    return run_dir
