"""StereoSet examples (:class:`StereoSetItem`, :func:`load_stereoset`).

JSONL (or a JSON list) of ``type, target, bias_type, context, stereotype,
anti-stereotype, unrelated``.
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
    json_items,
    read_text,
    text_field,
)
from steerlab.data.registry import resolve_data_path


@dataclass(frozen=True)
class StereoSetItem:
    """One StereoSet example with its three completions.

    Attributes:
        kind: ``"intersentence"`` or ``"intrasentence"``.
        target: the group or term the example is about.
        bias_type: ``"race"``, ``"profession"``, ``"gender"`` or ``"religion"``.
        context: the context sentence (intrasentence contexts contain ``BLANK``).
        stereotype: the stereotypical completion.
        anti_stereotype: the anti-stereotypical completion.
        unrelated: the meaningless completion.
    """

    kind: str
    target: str
    bias_type: str
    context: str
    stereotype: str
    anti_stereotype: str
    unrelated: str


def _stereoset_from_object(obj: Any, where: str) -> StereoSetItem:
    obj = as_object(obj, where)
    # The published files spell it "anti-stereotype"; accept the identifier form too.
    anti_key = "anti_stereotype" if "anti_stereotype" in obj else "anti-stereotype"
    return StereoSetItem(
        kind=text_field(obj, "type", where),
        target=text_field(obj, "target", where),
        bias_type=text_field(obj, "bias_type", where),
        context=text_field(obj, "context", where),
        stereotype=text_field(obj, "stereotype", where),
        anti_stereotype=text_field(obj, anti_key, where),
        unrelated=text_field(obj, "unrelated", where),
    )


def load_stereoset(path: str | os.PathLike[str], limit: int | None = None) -> list[StereoSetItem]:
    """Read StereoSet examples.

    Args:
        path: JSONL (or a JSON list) of ``{type, target, bias_type, context, stereotype,
            anti-stereotype, unrelated}``.
        limit: keep only the first ``limit`` examples.

    Returns:
        The examples, in file order.

    Raises:
        DataError: ``FILE:LINE: what is wrong``, invalid JSON, a missing or empty file.
    """
    check_limit(limit)
    path = resolve_data_path(path, "stereoset")
    source = Path(path)
    text = read_text(source)
    items = [_stereoset_from_object(obj, where) for where, obj in json_items(source, text)]
    return finish(items, source, "examples", limit)
