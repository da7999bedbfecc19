"""Building sweep tasks from ``KIND:PATH`` specs (what the CLI's options take)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from steerlab.data.evalsets import load_ab, load_harmful, load_mmlu
from steerlab.errors import DataError
from steerlab.evaluate.tasks import (
    ABBehaviorTask,
    ContinuationBehaviorTask,
    MultipleChoiceTask,
    PerplexityTask,
    ResponseScorer,
    SampledBehaviorTask,
)

_GENERIC_STEMS = {"test_ab", "test", "generate", "train", "data", "dataset", "harmful_train"}
BUILTIN_EVAL_SETS = {
    "honesty_ab": "honesty_ab.json",
    "general_mc": "general_mc.jsonl",
    "facts": "facts.csv",
    "general_text": "general_text.jsonl",
}


def resolve_path(path: str) -> str:
    """``builtin:NAME`` -> the shipped file's path; anything else unchanged."""
    if not path.startswith("builtin:"):
        return path
    name = path.split(":", 1)[1]
    if name not in BUILTIN_EVAL_SETS:
        raise DataError(f"no built-in set {name!r}; choose from {', '.join(BUILTIN_EVAL_SETS)}")
    return str(resources.files("steerlab.data") / "builtin" / BUILTIN_EVAL_SETS[name])


def task_name(path: str) -> str:
    """A readable task name from a data path: the file stem, or its folder for generic stems."""
    if path.startswith("builtin:"):
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
    resolved = resolve_path(path)
    label = name or task_name(path)
    if kind in ("caa", "ab"):
        return ABBehaviorTask(label, tuple(load_ab(resolved, limit=limit)), aligned=aligned)
    if kind == "pairs":
        from steerlab.data.pairs import load_pairs

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
            from steerlab.evaluate.scorers import RefusalScorer

            scorer = RefusalScorer()
        prompts = tuple(p.instruction for p in load_harmful(resolved, limit=limit))
        return SampledBehaviorTask(label, prompts, scorer, n_samples, temperature, max_new_tokens)
    raise DataError(f"--behavior {spec!r}: kind {kind!r} is not one of caa, ab, advbench, harmful")


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
    items = tuple(load_mmlu(resolve_path(path), limit=limit))
    return MultipleChoiceTask(name or task_name(path), items, n_samples, temperature, scoring)


def perplexity_task(path: str, *, limit: int | None = None) -> PerplexityTask:
    """A perplexity task from a text file (one text a line) or JSONL with a ``text`` field."""
    source = Path(path)
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
