"""The one registry of the data sets shipped with steerlab, and its two resolvers.

``builtin:NAME`` names a shipped set (:func:`resolve_data_path`, :func:`builtin_set`,
:func:`builtin_format`), and ``[NAME=]KIND:PATH`` names a data file read as a kind of
task data (:func:`parse_source_spec`); nothing else in steerlab parses either.

Every loader that reads a data file (:func:`~steerlab.data.load_pairs`, the evaluation-set
loaders of :mod:`steerlab.data.evalsets`, question and chat readers, tuning data) passes its
path through :func:`resolve_data_path` with the format it reads, so ``builtin:NAME`` works
wherever a data path is accepted, from Python and from every CLI option, and means the same
file everywhere. A built-in set that holds another kind of data, or an unknown name, is a
one-line :class:`~steerlab.errors.DataError` naming the sets that would fit.

This module sits at the bottom of the data layer: it imports nothing from steerlab but the
errors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from steerlab.errors import DataError

PREFIX = "builtin:"

FORMATS: dict[str, str] = {
    "pairs": "contrastive pairs",
    "ab": "A/B questions",
    "mc": "multiple-choice questions",
    "statements": "true/false statements",
    "texts": "texts",
    "questions": "questions",
    "chats": "chats",
    "qa": "question/answer chats",
    "harmful": "harmful prompts",
    "truthfulqa": "TruthfulQA questions",
    "stereoset": "StereoSet examples",
}
"""Each data format a loader reads, and how messages name it."""


@dataclass(frozen=True)
class BuiltinSet:
    """A data set shipped in ``steerlab/data/builtin/``.

    Attributes:
        name: what ``builtin:NAME`` names.
        file: the file name inside the package's ``builtin`` folder.
        formats: the :data:`FORMATS` its file can be read as (the first is what it is).
        items: records in the file.
        description: one line on what it holds.
    """

    name: str
    file: str
    formats: tuple[str, ...]
    items: int
    description: str

    @property
    def path(self) -> Path:
        """The shipped file."""
        return Path(str(resources.files("steerlab.data") / "builtin" / self.file))

    @property
    def kind(self) -> str:
        """What it holds, in words (its first format)."""
        return FORMATS[self.formats[0]]


BUILTIN_SETS: dict[str, BuiltinSet] = {
    s.name: s
    for s in (
        BuiltinSet(
            "happy_sad",
            "happy_sad.jsonl",
            ("pairs", "questions"),
            64,
            "mood: cheerful vs gloomy replies to everyday prompts",
        ),
        BuiltinSet(
            "honesty",
            "honesty.jsonl",
            ("pairs", "questions"),
            64,
            "honesty: true vs false short answers to factual questions",
        ),
        BuiltinSet(
            "deceptive_answers",
            "deceptive_answers.jsonl",
            ("chats",),
            64,
            "chats: the questions of builtin:honesty answered with its false answers",
        ),
        BuiltinSet(
            "honesty_ab",
            "honesty_ab.json",
            ("ab", "pairs", "questions"),
            40,
            "A/B dilemmas whose matching answer is the honest one",
        ),
        BuiltinSet(
            "general_mc",
            "general_mc.jsonl",
            ("mc", "questions"),
            40,
            "easy general-knowledge multiple-choice questions",
        ),
        BuiltinSet(
            "facts",
            "facts.csv",
            ("statements",),
            120,
            "true/false general-knowledge statements",
        ),
        BuiltinSet(
            "general_text",
            "general_text.jsonl",
            ("texts",),
            40,
            "neutral paragraphs for perplexity",
        ),
    )
}
"""Every built-in set by name."""


def is_builtin(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a ``builtin:NAME`` reference."""
    return os.fspath(path).startswith(PREFIX)


def builtin_names(data_format: str | None = None) -> tuple[str, ...]:
    """Names of the built-in sets (those readable as ``data_format`` when given)."""
    return tuple(
        name
        for name, entry in BUILTIN_SETS.items()
        if data_format is None or data_format in entry.formats
    )


def _check_format(data_format: str | None) -> None:
    if data_format is not None and data_format not in FORMATS:
        raise ValueError(f"unknown data format {data_format!r}; known: {', '.join(FORMATS)}")


def builtin_set(name: str, data_format: str | None = None) -> BuiltinSet:
    """The built-in set called ``name`` (with or without the ``builtin:`` prefix).

    Args:
        name: ``"happy_sad"`` or ``"builtin:happy_sad"``.
        data_format: a :data:`FORMATS` key the caller reads; None: any.

    Raises:
        DataError: an unknown name (listing the available ones), or a set that cannot be
            read as ``data_format`` (listing those that can).
    """
    _check_format(data_format)
    bare = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    entry = BUILTIN_SETS.get(bare.strip())
    fitting = builtin_names(data_format)
    if entry is None:
        every = ", ".join(f"{n} ({s.kind})" for n, s in BUILTIN_SETS.items())
        if data_format is None:
            listing = f"built-in sets: {every}"
        elif fitting:
            listing = f"built-in {FORMATS[data_format]}: {', '.join(fitting)}"
        else:
            listing = f"no built-in set holds {FORMATS[data_format]} (built-in sets: {every})"
        raise DataError(f"{PREFIX}{bare}: no such built-in set; {listing}")
    if data_format is not None and data_format not in entry.formats:
        wanted = FORMATS[data_format]
        listing = (
            f"built-in {wanted}: {', '.join(fitting)}"
            if fitting
            else f"no built-in set holds {wanted}"
        )
        raise DataError(f"{PREFIX}{bare} holds {entry.kind}, not {wanted}; {listing}")
    return entry


def resolve_data_path(path: str | os.PathLike[str], data_format: str | None = None) -> str:
    """``builtin:NAME`` -> the shipped file's path; any other path or id unchanged.

    Args:
        path: a file path, a Hub id, or ``builtin:NAME``.
        data_format: the :data:`FORMATS` key the caller reads, checked against the set.

    Returns:
        The path to open, as a string.

    Raises:
        DataError: an unknown built-in name or one of another format (see
            :func:`builtin_set`).
    """
    text = os.fspath(path)
    if not is_builtin(text):
        return text
    return str(builtin_set(text, data_format).path)


def builtin_format(name: str, formats: Sequence[str], purpose: str = "sets that fit") -> str:
    """The first of ``formats`` that the built-in set ``name`` can be read as.

    Args:
        name: ``"facts"`` or ``"builtin:facts"``.
        formats: :data:`FORMATS` keys the caller can read, in its order of preference.
        purpose: how the message names the sets that would fit (``"tuning sets"``).

    Raises:
        DataError: an unknown name, or a set readable as none of ``formats`` (the message
            lists the sets that are, format by format).
    """
    for data_format in formats:
        _check_format(data_format)
    entry = builtin_set(name)
    for data_format in formats:
        if data_format in entry.formats:
            return data_format
    wanted = [FORMATS[data_format] for data_format in formats]
    listed = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} or {wanted[-1]}"
    fitting = dict.fromkeys(n for data_format in formats for n in builtin_names(data_format))
    names = ", ".join(fitting) or "none"
    raise DataError(
        f"{PREFIX}{entry.name} holds {entry.kind}, not {listed}; built-in {purpose}: {names}"
    )


def parse_source_spec(spec: str, option: str) -> tuple[str | None, str, str]:
    """Split a ``KIND:PATH`` or ``NAME=KIND:PATH`` data spec (what the CLI's data options take).

    ``NAME=`` counts only before the first colon, so a path may hold ``=`` and ``:``
    (``mmlu:cais/mmlu:anatomy``, ``caa:builtin:honesty_ab``). ``PATH`` is returned as
    given (a file, a Hub id or ``builtin:NAME``, for the caller's loader to resolve).

    Args:
        spec: e.g. ``"caa:data/test_ab.json"`` or ``"refusal=caa:builtin:honesty_ab"``.
        option: how the message names where the spec came from (``"--behavior"``).

    Returns:
        ``(name, kind, path)``: the name or None, the kind lower-cased, the path; each
        stripped of surrounding whitespace.

    Raises:
        DataError: ``OPTION 'SPEC': expected KIND:PATH (or NAME=KIND:PATH)`` when a part
            is missing or empty.
    """
    name: str | None = None
    rest = spec
    if "=" in spec.split(":", 1)[0]:
        given, rest = spec.split("=", 1)
        name = given.strip()
    kind, sep, path = rest.partition(":")
    if not sep or not kind.strip() or not path.strip() or name == "":
        where = f"{option} " if option else ""
        raise DataError(f"{where}{spec!r}: expected KIND:PATH (or NAME=KIND:PATH)")
    return name, kind.strip().lower(), path.strip()
