"""Invalid specs, as a user would write them, each with the one-line error it must give:
``FILE:LINE: KEY: MESSAGE...``. The validation tests (test_spec, test_graph) and the CLI test
(test_cli_run) run the same tables."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from steerlab.errors import SpecError
from steerlab.runner import plan_experiment

# -- invalid specs: (id, line, key path or None, start of the message, the spec) -----------------
# Each is written as a user would, and the error must be ``FILE:LINE: KEY: MESSAGE...``.

InvalidSpec = tuple[str, int, str | None, str, str]


def _text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# fmt: off
SCHEMA_ERRORS: list[InvalidSpec] = [
    ("yaml-syntax", 4, None, "not valid YAML: ",
        _text("""
        models:
          base: default
        stages:
          mood: {kind: extract, pairs: [a, b}
        """)),
    ("yaml-tab", 2, None, "not valid YAML: found character '\\t'",
        "models:\n\tbase: default\nstages: {}\n"),
    ("duplicate-key", 7, "stages.mood.pairs", "duplicate key",
        _text("""
        models:
          base: default
        stages:
          mood:
            kind: extract
            pairs: builtin:happy_sad
            pairs: builtin:honesty
        """)),
    ("duplicate-stage", 5, "stages.mood", "duplicate key",
        _text("""
        stages:
          mood:
            kind: extract
            pairs: a.jsonl
          mood:
            kind: extract
            pairs: b.jsonl
        """)),
    ("empty-file", 1, None, "expected one YAML document (a mapping), found 0",
        ""),
    ("comments-only", 1, None, "expected one YAML document",
        "# to do\n"),
    ("top-level-list", 1, None, "the spec must be a mapping",
        "- kind: extract\n- kind: sweep\n"),
    ("top-level-text", 1, None, "the spec must be a mapping",
        "just a sentence\n"),
    ("unknown-top-level-key", 3, "model", "unknown key (expected one of: name, description, seed, ",
        _text("""
        name: study
        stages: {}
        model:
          base: default
        """)),
    ("unknown-stage-key", 8, "stages.mood.layer", "unknown key for a",  # 'an extract'...
        _text("""
        models:
          base: default
        stages:
          mood:
            kind: extract
            model: base
            pairs: builtin:happy_sad
            layer: 3
        """)),
    ("flag-spelling", 6, "stages.sw.batch-size", "unknown key for a sweep stage (expected one of: ",
        _text("""
        stages:
          v: {kind: extract, pairs: a.jsonl}
          sw:
            kind: sweep
            vector: v
            batch-size: 4
        """)),
    ("excluded-option", 6, "stages.cal.write", "unknown key for a calibrate stage",
        _text("""
        stages:
          v: {kind: extract, pairs: a.jsonl}
          cal:
            kind: calibrate
            vector: v
            write: true
        """)),
    ("runner-owned-output", 5, "stages.v.output", "unknown key for an extract stage",
        _text("""
        stages:
          v:
            kind: extract
            pairs: a.jsonl
            output: v.safetensors
        """)),
    ("dtype-belongs-to-models", 5, "stages.v.dtype", "unknown key",
        _text("""
        stages:
          v:
            kind: extract
            pairs: a.jsonl
            dtype: bfloat16
        """)),
    ("int-given-text", 5, "stages.mood.limit", "Input should be a valid integer (got 'ten')",
        _text("""
        stages:
          mood:
            kind: extract
            pairs: a.jsonl
            limit: ten
        """)),
    ("int-given-fraction", 5, "stages.mood.batch_size", "Input should be a valid integer (got 2.5)",
        _text("""
        stages:
          mood:
            kind: extract
            pairs: a.jsonl
            batch_size: 2.5
        """)),
    ("int-given-bool", 5, "stages.mood.limit", "Input should be a valid integer (got True)",
        _text("""
        stages:
          mood:
            kind: extract
            pairs: a.jsonl
            limit: true
        """)),
    ("float-given-list", 5, "stages.gen.temperature", "Input should be a valid number",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: hello
            temperature: [0.5, 1]
        """)),
    ("float-given-text", 5, "stages.gen.temperature", "Input should be a valid number (got 'warm')",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: hello
            temperature: warm
        """)),
    ("bool-given-number", 5, "stages.gen.raw", "Input should be a valid boolean (got 1)",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: hello
            raw: 1
        """)),
    ("bool-given-text", 5, "stages.gen.raw", "Input should be a valid boolean (got 'yes')",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: hello
            raw: 'yes'
        """)),
    ("text-given-bool", 5, "stages.gen.coefficients", "Input should be a valid string (got True)",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: hello
            coefficients: true
        """)),
    ("text-given-mapping", 4, "stages.mood.pairs", "Input should be a valid string",
        _text("""
        stages:
          mood:
            kind: extract
            pairs: {file: a.jsonl}
        """)),
    ("list-given-number", 4, "stages.gen.prompts", "Input should be a valid list (got 5)",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: 5
        """)),
    ("reference-given-list", 6, "stages.mood.model", "Input should be a valid string",
        _text("""
        models:
          base: default
        stages:
          mood:
            kind: extract
            model: [base]
            pairs: a.jsonl
        """)),
    ("seed-given-fraction", 1, "seed", "Input should be a valid integer (got 1.5)",
        "seed: 1.5\nstages: {}\n"),
    ("name-given-number", 1, "name", "Input should be a valid string (got 5)",
        "name: 5\nstages: {}\n"),
    ("note-given-list", 5, "stages.mood.note", "Input should be a valid string",
        _text("""
        stages:
          mood:
            kind: extract
            pairs: a.jsonl
            note: [one, two]
        """)),
    ("steered-coefficient-text", 8, "stages.ev.steered.0.coefficient",
        "Input should be a valid number",
        _text("""
        models: {m: default}
        stages:
          v: {kind: extract, model: m, pairs: a.jsonl}
          ev:
            kind: eval
            models: [m]
            steered:
              - {model: m, vector: v, coefficient: strong}
        """)),
    ("nan", 5, "stages.gen.temperature", "Input should be a finite number (got nan)",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: hello
            temperature: .nan
        """)),
    ("infinity", 5, "stages.gen.temperature", "Input should be a finite number (got inf)",
        _text("""
        stages:
          gen:
            kind: generate
            prompts: hello
            temperature: .inf
        """)),
    ("minus-infinity", 5, "stages.ft.lr", "Input should be a finite number (got -inf)",
        _text("""
        stages:
          ft:
            kind: finetune
            data: chats.jsonl
            lr: -.inf
        """)),
    ("steered-nan", 8, "stages.ev.steered.0.coefficient", "Input should be a finite number",
        _text("""
        models: {m: default}
        stages:
          v: {kind: extract, model: m, pairs: a.jsonl}
          ev:
            kind: eval
            models: [m]
            steered:
              - {model: m, vector: v, coefficient: .nan}
        """)),
    ("extract-without-pairs", 4, "stages.mood.pairs", "required key missing",
        _text("""
        models:
          base: default
        stages:
          mood:
            kind: extract
            model: base
        """)),
    ("generate-without-prompts", 2, "stages.gen.prompts", "required key missing",
        _text("""
        stages:
          gen:
            kind: generate
            max_new_tokens: 3
        """)),
    ("finetune-without-data", 2, "stages.ft.data", "required key missing",
        "stages:\n  ft:\n    kind: finetune\n"),
    ("diff-without-tuned", 2, "stages.d.tuned", "required key missing",
        "stages:\n  d:\n    kind: diff\n"),
    ("steered-without-coefficient", 8, "stages.ev.steered.0.coefficient", "required key missing",
        _text("""
        models: {m: default}
        stages:
          v: {kind: extract, model: m, pairs: a.jsonl}
          ev:
            kind: eval
            models: [m]
            steered:
              - {model: m, vector: v}
        """)),
    ("model-without-source", 2, "models.base.source", "required key missing",
        _text("""
        models:
          base:
            dtype: bfloat16
        stages: {}
        """)),
    ("no-stages", 1, "stages", "required key missing",
        "models:\n  base: default\n"),
    ("unknown-kind", 2, "stages.mood", "kind 'extraction' is not one of extract, diff, import, ",
        _text("""
        stages:
          mood:
            kind: extraction
            pairs: a.jsonl
        """)),
    ("kind-given-number", 2, "stages.mood", "kind 5 is not one of extract, ",
        "stages:\n  mood:\n    kind: 5\n"),
    ("stage-without-kind", 2, "stages.mood", "a stage needs a kind: one of extract, diff, ",
        "stages:\n  mood:\n    pairs: a.jsonl\n"),
    ("bad-stage-name", 3, "stages.2nd", "name '2nd': use letters, digits, '_', '-' and '.'",
        "stages:\n  ok: {kind: extract, pairs: a}\n  2nd: {kind: extract, pairs: b}\n"),
    ("stage-name-with-a-space", 3, "stages.my vector", "name 'my vector': use letters, ",
        _text("""
        stages:
          ok: {kind: extract, pairs: a}
          'my vector':
            kind: extract
            pairs: b
        """)),
    ("model-name-with-a-slash", 3, "models.big/model", "name 'big/model': use letters, ",
        "models:\n  base: default\n  'big/model': default\nstages: {}\n"),
    ("model-entry-unknown-key", 4, "models.base.dtipe",
        "unknown key (expected one of: source, dtype, ",
        "models:\n  base:\n    source: default\n    dtipe: bfloat16\nstages: {}\n"),
    ("model-entry-given-number", 2, "models.base", "Input should be a valid string (got 5)",
        "models:\n  base: 5\nstages: {}\n"),
    ("stages-given-list", 3, "stages", "Input should be a valid dictionary",
        _text("""
        models:
          base: default
        stages:
          - kind: extract
            pairs: a.jsonl
        """)),
    ("stage-given-list", 2, "stages.mood", "Input should be a valid dictionary",
        _text("""
        stages:
          mood:
            - kind: extract
            - pairs: a.jsonl
        """)),
    ("stage-given-text", 2, "stages.mood",
        "Input should be a valid dictionary or object to extract fields from (got "
        "'extract')",
        "stages:\n  mood: extract\n"),
    ("stage-empty", 2, "stages.mood", "Input should be a valid dictionary",
        "stages:\n  mood:\n"),
    ("models-given-list", 1, "models", "Input should be a valid dictionary",
        "models:\n  - default\nstages: {}\n"),
    ("stages-empty-value", 1, "stages", "Input should be a valid dictionary",
        "stages:\n"),
    ("steered-given-mapping", 7, "stages.ev.steered", "Input should be a valid list",
        _text("""
        models: {m: default}
        stages:
          v: {kind: extract, model: m, pairs: a.jsonl}
          ev:
            kind: eval
            models: [m]
            steered: {model: m, vector: v, coefficient: 1}
        """)),
]

GRAPH_ERRORS: list[InvalidSpec] = [
    ("vector-not-a-stage", 8, "stages.gen.vector", "no vector called 'moood' (known: mood)",
        _text("""
        models:
          base: default
        stages:
          mood: {kind: extract, model: base, pairs: a.jsonl}
          gen:
            kind: generate
            model: base
            vector: moood
            prompts: hello
        """)),
    ("model-not-defined", 6, "stages.mood.model", "no model called 'bsae' (known: base)",
        _text("""
        models:
          base: default
        stages:
          mood:
            kind: extract
            model: bsae
            pairs: a.jsonl
        """)),
    ("vectors-item-not-a-stage", 8, "stages.cmp.vectors.1", "no vector called 'c' (known: a, b)",
        _text("""
        stages:
          a: {kind: extract, pairs: a.jsonl}
          b: {kind: extract, pairs: b.jsonl}
          cmp:
            kind: compare
            vectors:
              - a
              - c
        """)),
    ("eval-model-not-defined", 8, "stages.ev.models.tuned", "no model called 'tunde'",
        _text("""
        models:
          base: default
        stages:
          ev:
            kind: eval
            models:
              base: base
              tuned: tunde
        """)),
    ("steered-vector-not-a-stage", 9, "stages.ev.steered.0.vector",
        "no vector called 'w' (known: v)",
        _text("""
        models: {m: default}
        stages:
          v: {kind: extract, model: m, pairs: a.jsonl}
          ev:
            kind: eval
            models: [m]
            steered:
              - model: m
                vector: w
                coefficient: 1
        """)),
    ("sweep-vector-is-a-finetune", 11, "stages.sw.vector",
        "stage 'ft' (finetune) does not make a vector",
        _text("""
        models:
          base: default
        stages:
          ft:
            kind: finetune
            model: base
            data: chats.jsonl
          sw:
            kind: sweep
            model: base
            vector: ft
        """)),
    ("model-is-an-extract", 7, "stages.gen.model", "stage 'mood' (extract) does not make a model",
        _text("""
        models:
          base: default
        stages:
          mood: {kind: extract, model: base, pairs: a.jsonl}
          gen:
            kind: generate
            model: mood
            prompts: hello
        """)),
    ("compare-a-finetune", 6, "stages.cmp.vectors.1",
        "stage 'ft' (finetune) does not make a vector",
        _text("""
        stages:
          ft: {kind: finetune, data: chats.jsonl}
          v: {kind: extract, pairs: a.jsonl}
          cmp:
            kind: compare
            vectors: [v, ft]
        """)),
    ("steered-model-is-a-vector", 8, "stages.ev.steered.0.model",
        "stage 'v' (extract) does not make a model",
        _text("""
        models: {m: default}
        stages:
          v: {kind: extract, model: m, pairs: a.jsonl}
          ev:
            kind: eval
            models: [m]
            steered:
              - model: v
                vector: v
                coefficient: 1
        """)),
    ("model-and-stage-share-a-name", 5, "stages.mood", "'mood' is also a model's name",
        _text("""
        models:
          base: default
          mood: default
        stages:
          mood:
            kind: extract
            model: base
            pairs: a.jsonl
        """)),
    ("cycle-finetune-fold", 5, "stages.a", "stages depend on each other in a cycle: a -> b -> a",
        _text("""
        models:
          base: default
        stages:
          v: {kind: extract, model: base, pairs: a.jsonl}
          a:
            kind: finetune
            model: b
            data: chats.jsonl
          b:
            kind: fold
            model: a
            vector: v
        """)),
    ("cycle-tune-fold", 4, "stages.t", "stages depend on each other in a cycle: t -> f -> t",
        _text("""
        models: {m: default}
        stages:
          v: {kind: extract, model: m, pairs: a.jsonl}
          t:
            kind: tune
            model: f
            vector: v
          f:
            kind: fold
            model: t
            vector: v
        """)),
    ("cycle-through-a-vector", 3, "stages.v", "stages depend on each other in a cycle: v -> f -> v",
        _text("""
        models: {m: default}
        stages:
          v:
            kind: extract
            model: f
            pairs: a.jsonl
          f:
            kind: fold
            model: m
            vector: v
        """)),
    ("cycle-of-three", 2, "stages.a", "stages depend on each other in a cycle: a -> c -> b -> a",
        _text("""
        stages:
          a: {kind: finetune, model: c, data: chats.jsonl}
          b: {kind: finetune, model: a, data: chats.jsonl}
          c: {kind: finetune, model: b, data: chats.jsonl}
        """)),
    ("stage-reads-itself", 3, "stages.f", "stages depend on each other in a cycle: f -> f",
        _text("""
        stages:
          v: {kind: extract, pairs: a.jsonl}
          f:
            kind: fold
            model: f
            vector: v
        """)),
]
# fmt: on


def spec_error(folder: Path, text: str) -> tuple[Path, str]:
    """Write ``text`` as ``folder/spec.yaml`` and plan it: ``(the file, the SpecError's text)``;
    fails unless planning refuses it with a SpecError."""
    file = folder / "spec.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        plan_experiment(file)
    return file, str(caught.value)


def expected_error(file: Path, line: int, key: str | None, message: str) -> str:
    """The start of a one-line spec error: ``FILE:LINE: KEY: MESSAGE``."""
    return f"{file}:{line}: {key + ': ' if key else ''}{message}"


def assert_error(error: str, file: Path, line: int, key: str | None, message: str) -> None:
    """``error`` is one line, starting with ``FILE:LINE: KEY: MESSAGE``."""
    assert "\n" not in error, error
    want = expected_error(file, line, key, message)
    assert error.startswith(want), f"\n got: {error}\nwant: {want}..."
