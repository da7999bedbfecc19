"""Shared by the evaluation-set tests: the ../shared/data folder, writing files, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from steerlab.errors import DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present")


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8) and return the path."""
    path.write_text(text, encoding="utf-8")
    return path


def error_of(loader: Callable[..., Any], path: Path, **kwargs: Any) -> str:
    """The one-line DataError message ``loader(path)`` raises; it must name the file."""
    with pytest.raises(DataError) as info:
        loader(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    return message
