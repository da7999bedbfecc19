"""Evaluation data sets, one module per format, and the ``KIND:PATH`` dispatcher.

Each loader reads one public format from a local file and returns frozen value types (each
format in its own module, all re-exported here):

* :func:`load_mmlu`: MMLU, either the original headerless CSV ``question,A,B,C,D,answer``
  (answer a letter; the subject comes from the file name, ``medical_genetics_test.csv`` ->
  ``medical_genetics``) or the Hub ``cais/mmlu`` layout (``question, choices, answer,
  subject`` with ``choices`` a list and ``answer`` an index) as CSV with a header, JSONL or a
  JSON list; a Hub id such as ``cais/mmlu:medical_genetics`` when ``datasets`` is installed;
* :func:`load_ab`: the A/B questions of Contrastive Activation Addition (a JSON list of
  ``question, answer_matching_behavior, answer_not_matching_behavior``);
* :func:`load_harmful`: AdvBench CSV (``goal,target``) or a JSON list / JSONL of
  ``{instruction, category}``;
* :func:`load_truthfulqa_mc`: TruthfulQA multiple choice (``mc_task.json``: ``mc1_targets`` and
  ``mc2_targets`` map each answer text to 1 (true) or 0 (false));
* :func:`load_stereoset`: StereoSet JSONL (``type, target, bias_type, context, stereotype,
  anti-stereotype, unrelated``);
* :func:`load_statements`: true/false statements, CSV with at least ``statement,label``.

:func:`load_task_data` reads ``KIND:PATH`` (e.g. ``caa:refusal/test_ab.json``; parsed by
:func:`steerlab.data.registry.parse_source_spec`). Every loader also takes ``builtin:NAME``
for a shipped set of its format (:mod:`steerlab.data.registry`).

Bad input raises :class:`~steerlab.errors.DataError` with a one-line message (see
:mod:`steerlab.data.readers`): ``FILE:LINE:`` for CSV rows and JSONL lines, ``FILE: item
N:`` for the N-th (0-based) object of a JSON list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from steerlab.data.ab import ABItem, load_ab
from steerlab.data.harmful import HarmfulPrompt, load_harmful
from steerlab.data.mmlu import LETTERS, MMLU_COLUMNS, MultipleChoiceItem, load_mmlu
from steerlab.data.registry import parse_source_spec
from steerlab.data.statements import Statement, load_statements
from steerlab.data.stereoset import StereoSetItem, load_stereoset
from steerlab.data.truthfulqa import TruthfulQAMCItem, load_truthfulqa_mc
from steerlab.errors import DataError

__all__ = [
    "LETTERS",
    "MMLU_COLUMNS",
    "TASK_KINDS",
    "TASK_LOADERS",
    "ABItem",
    "EvalItem",
    "HarmfulPrompt",
    "MultipleChoiceItem",
    "Statement",
    "StereoSetItem",
    "TruthfulQAMCItem",
    "load_ab",
    "load_harmful",
    "load_mmlu",
    "load_statements",
    "load_stereoset",
    "load_task_data",
    "load_truthfulqa_mc",
]

EvalItem = (
    MultipleChoiceItem | ABItem | HarmfulPrompt | TruthfulQAMCItem | StereoSetItem | Statement
)
"""Any item an evaluation-set loader returns."""


TASK_LOADERS: dict[str, Callable[..., list[Any]]] = {
    "mmlu": load_mmlu,
    "caa": load_ab,
    "ab": load_ab,
    "advbench": load_harmful,
    "harmful": load_harmful,
    "truthfulqa": load_truthfulqa_mc,
    "stereoset": load_stereoset,
    "facts": load_statements,
}
TASK_KINDS = tuple(TASK_LOADERS)


def load_task_data(spec: str, limit: int | None = None) -> list[EvalItem]:
    """Read an evaluation set named ``KIND:PATH``.

    Args:
        spec: ``KIND:PATH`` with ``KIND`` one of ``mmlu``, ``caa`` (or ``ab``), ``advbench``
            (or ``harmful``), ``truthfulqa``, ``stereoset``, ``facts``; ``PATH`` a local file
            (or, for ``mmlu``, ``advbench`` and ``truthfulqa``, a Hub id), e.g.
            ``caa:../shared/data/caa/refusal/test_ab.json`` or ``mmlu:cais/mmlu:anatomy``.
        limit: keep only the first ``limit`` items.

    Returns:
        The items of the matching loader.

    Raises:
        DataError: a malformed spec, an unknown kind, or any error of the loader.
    """
    kinds = ", ".join(TASK_KINDS)
    try:
        name, kind, path = parse_source_spec(spec, "")
    except DataError:
        name, kind, path = None, "", ""
    if not kind or name is not None:
        raise DataError(f"{spec!r}: expected KIND:PATH with KIND one of {kinds}")
    loader = TASK_LOADERS.get(kind)
    if loader is None:
        raise DataError(f"{spec!r}: unknown data kind {kind!r}; choose from {kinds}")
    return loader(path, limit=limit)
