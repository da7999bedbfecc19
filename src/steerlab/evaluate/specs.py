"""Building sweep tasks from ``KIND:PATH`` specs (what the CLI's options take)."""

from __future__ import annotations

import json
from pathlib import Path

from steerlab.data.evalsets import load_ab, load_harmful, load_mmlu
from steerlab.data.pairs import load_pairs
from steerlab.data.registry import is_builtin, resolve_data_path
from steerlab.errors import DataError
from steerlab.evaluate.scorers import RefusalScorer
from steerlab.evaluate.tasks import (
    ABBehaviorTask,
    ContinuationBehaviorTask,
    MultipleChoiceTask,
    PerplexityTask,
    ResponseScorer,
    SampledBehaviorTask,
)

_GENERIC_STEMS = {"test_ab", "test", "generate", "train", "data", "dataset", "harmful_train"}


def task_name(path: str) -> str:
    """A readable task name from a data path: the file stem, or its folder for generic stems."""
    if is_builtin(path):
        return path.split(":", 1)[1]
    file = Path(path)
    stem = file.stem
    for suffix in ("_test", "_dev", "_val"):
        stem = stem.removesuffix(suffix)
    if stem in _GENERIC_STEMS and file.parent.name:
        return file.parent.name
    return stem


def _split(spec: str, option: str) -> tuple[str | None, str, str]:
    name: str | None = None
    if "=" in spec.split(":", 1)[0]:
        name, spec = spec.split("=", 1)
    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise DataError(f"{option} {spec!r}: expected KIND:PATH (or NAME=KIND:PATH)")
    return name, kind.strip().lower(), path.strip()


def behavior_task(
    spec: str,
    *,
    limit: int | None = None,
    aligned: str = "matching",
    scorer: ResponseScorer | None = None,
    n_samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 48,
) -> ABBehaviorTask | ContinuationBehaviorTask | SampledBehaviorTask:
    """A behaviour task from ``[NAME=]KIND:PATH``.

    ``caa``/``ab``: A/B likelihood task. ``pairs``: reply likelihoods of contrastive pairs
    with prompts (``builtin:happy_sad`` works). ``advbench``/``harmful``: sampled responses
    scored by ``scorer`` (default: refusal = aligned).
    """
    name, kind, path = _split(spec, "--behavior")
    label = name or task_name(path)
    if kind in ("caa", "ab"):
        return ABBehaviorTask(label, tuple(load_ab(path, limit=limit)), aligned=aligned)
    if kind == "pairs":
        pairs = load_pairs(path, limit=limit)
        if any(p.messages is None or p.messages[-1][0] != "user" for p in pairs):
            raise DataError(f"--behavior {spec!r}: pairs need a 'prompt' (or end with a user turn)")
        return ContinuationBehaviorTask(
            label,
            tuple(p.messages[-1][1] for p in pairs),  # type: ignore[index]
            tuple(p.positive for p in pairs),
            tuple(p.negative for p in pairs),
        )
    if kind in ("advbench", "harmful"):
        if scorer is None:
            scorer = RefusalScorer()
        prompts = tuple(p.instruction for p in load_harmful(path, limit=limit))
        return SampledBehaviorTask(label, prompts, scorer, n_samples, temperature, max_new_tokens)
    raise DataError(
        f"--behavior {spec!r}: kind {kind!r} is not one of caa, ab, pairs, advbench, harmful"
    )


def helpfulness_task(
    spec: str,
    *,
    limit: int | None = None,
    n_samples: int = 0,
    temperature: float = 1.0,
    scoring: str = "letter",
) -> MultipleChoiceTask:
    """A multiple-choice helpfulness task from ``[NAME=]mmlu:PATH``.

    ``scoring="letter"`` (the study's): probability of the correct letter; ``"text"``: the
    likelihood of each answer's text, for models too small to answer by letter.
    """
    name, kind, path = _split(spec, "--helpfulness")
    if kind != "mmlu":
        raise DataError(f"--helpfulness {spec!r}: kind {kind!r} is not mmlu")
    items = tuple(load_mmlu(path, limit=limit))
    return MultipleChoiceTask(name or task_name(path), items, n_samples, temperature, scoring)


def perplexity_task(path: str, *, limit: int | None = None) -> PerplexityTask:
    """A perplexity task from a text file (one text a line) or JSONL with a ``text`` field.

    ``builtin:general_text`` names the shipped set.
    """
    source = Path(resolve_data_path(path, "texts"))
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    texts: list[str] = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if source.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{source}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DataError(f"{source}:{number}: expected an object with a 'text' string")
            texts.append(record["text"])
        else:
            texts.append(line)
    if not texts:
        raise DataError(f"{source}: no texts")
    return PerplexityTask(task_name(path), tuple(texts[:limit] if limit else texts))
