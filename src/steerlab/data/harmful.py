"""Harmful instructions (:class:`HarmfulPrompt`, :func:`load_harmful`).

AdvBench CSV (``goal,target``), a JSON list / JSONL of ``{instruction, category}`` (the
refusal-direction splits), or a Hub id such as ``walledai/AdvBench``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.data.readers import (
    as_object,
    check_limit,
    check_width,
    column_names,
    csv_rows,
    finish,
    header_of,
    hub_rows,
    is_json,
    json_items,
    looks_like_hub_id,
    nonempty,
    optional_text_field,
    read_text,
    text_field,
)
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError


@dataclass(frozen=True)
class HarmfulPrompt:
    """One harmful instruction (AdvBench or refusal-direction sets).

    Attributes:
        instruction: the request.
        category: the harm category, ``None`` when the source gives none.
        target: the affirmative reply AdvBench pairs with it (``"Sure, here is ..."``),
            ``None`` when the source gives none.
    """

    instruction: str
    category: str | None = None
    target: str | None = None


_INSTRUCTION_KEYS = ("instruction", "goal", "prompt")


def _harmful_from_object(obj: Any, where: str) -> HarmfulPrompt:
    obj = as_object(obj, where)
    key = next((k for k in _INSTRUCTION_KEYS if k in obj), "instruction")
    instruction = text_field(obj, key, where)
    category = optional_text_field(obj, "category", where)
    target = optional_text_field(obj, "target", where)
    return HarmfulPrompt(instruction, category, target)


def _harmful_csv(path: Path, text: str) -> list[HarmfulPrompt]:
    rows = csv_rows(path, text)
    if not rows:
        return []
    first_line, first = rows[0]
    header = header_of(first)
    key = next((k for k in ("goal", "instruction", "prompt") if k in header), None)
    if key is None:
        raise DataError(
            f"{path}:{first_line}: missing column 'goal' (or 'instruction', 'prompt'); "
            f"header: {column_names(first)}"
        )
    items = []
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        check_width(path, line, row, len(first), column_names(first))
        instruction = nonempty(row[header[key]], where, key)
        category = row[header["category"]] if "category" in header else None
        target = row[header["target"]] if "target" in header else None
        items.append(HarmfulPrompt(instruction, category or None, target or None))
    return items


def load_harmful(path: str | os.PathLike[str], limit: int | None = None) -> list[HarmfulPrompt]:
    """Read harmful instructions.

    Args:
        path: AdvBench CSV with a ``goal,target`` header (``instruction`` or ``prompt`` also
            name the request; an optional ``category`` column is kept), a JSON list / JSONL of
            ``{instruction, category}`` (refusal-direction splits), or a Hub id
            ``NAME[:CONFIG[:SPLIT]]`` such as ``walledai/AdvBench`` (needs ``datasets``;
            split ``train`` by default).
        limit: keep only the first ``limit`` prompts.

    Returns:
        The prompts, in file order.

    Raises:
        DataError: ``FILE:LINE`` or ``FILE: item N`` and what is wrong, a missing or empty file.
    """
    check_limit(limit)
    path = resolve_data_path(path, "harmful")
    spec = os.fspath(path)
    if looks_like_hub_id(spec):
        rows = hub_rows(spec, default_config=None, default_split="train")
        items = [_harmful_from_object(row, f"{spec}: row {i}") for i, row in enumerate(rows)]
        return finish(items, spec, "prompts", limit)
    source = Path(path)
    text = read_text(source)
    if is_json(source, text):
        items = [_harmful_from_object(obj, where) for where, obj in json_items(source, text)]
    else:
        items = _harmful_csv(source, text)
    return finish(items, source, "prompts", limit)
