"""TruthfulQA multiple choice (:class:`TruthfulQAMCItem`, :func:`load_truthfulqa_mc`).

``mc_task.json``: ``mc1_targets`` and ``mc2_targets`` map each answer text to 1 (true) or
0 (false); the Hub layout ``{choices: [...], labels: [...]}`` and a Hub id such as
``truthfulqa/truthful_qa`` are read too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.data.readers import (
    as_object,
    check_limit,
    finish,
    hub_rows,
    json_items,
    looks_like_hub_id,
    read_text,
    text_field,
)
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError
from steerlab.validation import is_int


@dataclass(frozen=True)
class TruthfulQAMCItem:
    """One TruthfulQA multiple-choice question.

    Attributes:
        question: the question.
        mc1_choices: MC1 answer options (exactly one is true); empty answers in the source
            are dropped.
        mc1_labels: 1 for the true option, 0 for the others, aligned with ``mc1_choices``.
        mc2_choices: MC2 answer options (one or more are true).
        mc2_labels: 1 for each true option, 0 for each false one.
    """

    question: str
    mc1_choices: tuple[str, ...]
    mc1_labels: tuple[int, ...]
    mc2_choices: tuple[str, ...]
    mc2_labels: tuple[int, ...]

    @property
    def mc1_answer(self) -> int:
        """Index of the true MC1 option."""
        return self.mc1_labels.index(1)


def _label(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if is_int(value) and value in (0, 1):
        return int(value)
    raise DataError(f"{where}: {what} must be 0 or 1, got {value!r}")


def _targets(obj: dict[str, Any], key: str, where: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, dict) or not value:
        raise DataError(f"{where}: field {key!r} must be a non-empty object")
    if set(value) == {"choices", "labels"} and isinstance(value["choices"], list):
        # The Hub layout: {"choices": [...], "labels": [...]}.
        choices, labels = value["choices"], value["labels"]
        if not isinstance(labels, list) or len(labels) != len(choices) or not choices:
            raise DataError(f"{where}: field {key!r} needs as many labels as choices")
        pairs = list(zip(choices, labels, strict=True))
    else:
        pairs = list(value.items())
    for choice, _ in pairs:
        if not isinstance(choice, str):
            raise DataError(f"{where}: field {key!r}: every answer must be a string")
    labels = [_label(lab, where, f"{key}: label of {c!r}") for c, lab in pairs]
    # The published mc_task.json has a few empty answers (artefacts of splitting on ';'):
    # an empty continuation would be scored as certain, so they are dropped.
    kept = [(c, lab) for (c, _), lab in zip(pairs, labels, strict=True) if c.strip()]
    if not kept:
        raise DataError(f"{where}: field {key!r} has no non-empty answer")
    return tuple(c for c, _ in kept), tuple(lab for _, lab in kept)


def _truthfulqa_from_object(obj: Any, where: str) -> TruthfulQAMCItem:
    obj = as_object(obj, where)
    question = text_field(obj, "question", where)
    mc1_choices, mc1_labels = _targets(obj, "mc1_targets", where)
    mc2_choices, mc2_labels = _targets(obj, "mc2_targets", where)
    if sum(mc1_labels) != 1:
        raise DataError(
            f"{where}: field 'mc1_targets' must mark exactly one answer 1, got {sum(mc1_labels)}"
        )
    if 1 not in mc2_labels:
        raise DataError(f"{where}: field 'mc2_targets' must mark at least one answer 1")
    return TruthfulQAMCItem(question, mc1_choices, mc1_labels, mc2_choices, mc2_labels)


def load_truthfulqa_mc(
    path: str | os.PathLike[str], limit: int | None = None
) -> list[TruthfulQAMCItem]:
    """Read TruthfulQA multiple-choice questions.

    Args:
        path: ``mc_task.json``, a JSON list (or JSONL) of ``{question, mc1_targets,
            mc2_targets}`` where each targets object maps answer text to 1 (true) or 0
            (false), or uses the Hub layout ``{choices: [...], labels: [...]}``; or a Hub id
            ``NAME[:CONFIG[:SPLIT]]`` such as ``truthfulqa/truthful_qa`` (needs ``datasets``;
            config ``multiple_choice`` and split ``validation`` by default).
        limit: keep only the first ``limit`` questions.

    Returns:
        The questions, in file order, answers in file order.

    Raises:
        DataError: ``FILE: item N: what is wrong``, invalid JSON, a missing or empty file.
    """
    check_limit(limit)
    path = resolve_data_path(path, "truthfulqa")
    spec = os.fspath(path)
    if looks_like_hub_id(spec):
        rows = hub_rows(spec, default_config="multiple_choice", default_split="validation")
        items = [_truthfulqa_from_object(row, f"{spec}: row {i}") for i, row in enumerate(rows)]
        return finish(items, spec, "questions", limit)
    source = Path(path)
    text = read_text(source)
    items = [_truthfulqa_from_object(obj, where) for where, obj in json_items(source, text)]
    return finish(items, source, "questions", limit)
