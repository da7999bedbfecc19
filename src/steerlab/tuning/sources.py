"""Training chats for representation tuning, from whatever data file the user has.

:func:`tuning_chats` reads one file (or a ``builtin:`` name) and returns chats to train on:

* **true/false statements** (CSV with ``statement,label``; JSON/JSONL objects with
  ``statement``/``label``; ``builtin:facts``): the honesty data of the representation
  tuning study, :func:`steerlab.data.honesty.honesty_chats` on the *training* part of the
  stable split (statements that :func:`~steerlab.data.honesty.held_out` keeps for
  evaluation are left out, so ``steerlab eval`` measures held-out facts);
* **contrastive pairs** (``prompt``/``positive``/``negative``, ``messages`` + replies, CAA
  A/B; ``builtin:honesty``...): the prompt with the positive reply (``completions="honest"``
  or ``"positive"``) or with the negative one (``"dishonest"`` / ``"negative"``);
* **chats** (message lists, ``{"messages": [...]}``): as they are.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.data.chats import Chat, load_chats
from steerlab.data.honesty import HonestyTemplates, held_out, honesty_chats, statements_sha256
from steerlab.data.pairs import ContrastPair, load_pairs
from steerlab.data.registry import builtin_format, is_builtin
from steerlab.data.statements import Statement, load_statements
from steerlab.errors import DataError, SpecError
from steerlab.validation import check_choice

KINDS = ("auto", "facts", "pairs", "chats")
# The registry's data format of each kind, in the order a built-in set is tried.
_KIND_OF_FORMAT = {"statements": "facts", "pairs": "pairs", "chats": "chats"}
_POSITIVE = {"honest": True, "positive": True, "dishonest": False, "negative": False}


@dataclass(frozen=True)
class TuningData:
    """Chats to train on and where they came from.

    Attributes:
        chats: the training chats (each ends with an assistant reply).
        kind: ``"facts"``, ``"pairs"`` or ``"chats"``.
        source: the file or ``builtin:`` name read.
        n_items: records read from the source.
        n_held_out: statements left out because they belong to the evaluation split.
        items_sha256: for statements, the hash of every statement read (``[text, label]``
            records, before the split), which ``evaluate`` matches against its facts files.
        include_held_out: whether the held-out statements were trained on too.
    """

    chats: tuple[Chat, ...]
    kind: str
    source: str
    n_items: int
    n_held_out: int = 0
    items_sha256: str | None = None
    include_held_out: bool = False

    def record(self) -> dict[str, Any]:
        """What a run's provenance records about its data (``data_source``).

        ``source`` is ``builtin:NAME`` or the file's absolute path, so that ``steerlab
        eval`` can tell a facts file the model was tuned on (then it scores the held-out
        split) from a user's own test file (scored whole).
        """
        source = self.source if is_builtin(self.source) else str(Path(self.source).resolve())
        return {
            "source": source,
            "kind": self.kind,
            "n_items": self.n_items,
            "n_held_out": self.n_held_out,
            "items_sha256": self.items_sha256,
            "include_held_out": self.include_held_out,
        }

    def describe(self) -> str:
        """One line for the CLI, e.g. ``"192 chats from 120 facts (24 held out)"``."""
        what = {"facts": "statements", "pairs": "pairs", "chats": "chats"}[self.kind]
        held = f", {self.n_held_out} held out for evaluation" if self.n_held_out else ""
        return f"{len(self.chats)} chats from {self.n_items} {what} in {self.source}{held}"


def _first_record(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped:
        raise DataError(f"{path}: empty file")
    if path.suffix == ".jsonl" or not stripped.startswith("["):
        line_number, line = next(
            (n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()
        )
        try:
            return json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_number}: invalid JSON ({exc.msg})") from None
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not items:
        raise DataError(f"{path}: empty list")
    return items[0]


def detect_kind(source: str | os.PathLike[str]) -> str:
    """``"facts"``, ``"pairs"`` or ``"chats"``, from the file's suffix and first record.

    Raises:
        DataError: if the file is missing or its records match no known layout.
    """
    text = os.fspath(source)
    if is_builtin(text):
        return _KIND_OF_FORMAT[builtin_format(text, tuple(_KIND_OF_FORMAT), "tuning sets")]
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() in (".csv", ".tsv"):
        return "facts"
    record = _first_record(path)
    if isinstance(record, list):
        return "chats"
    if isinstance(record, dict):
        if "statement" in record:
            return "facts"
        if "positive" in record or "answer_matching_behavior" in record:
            return "pairs"
        if "messages" in record:
            return "chats"
    raise DataError(
        f"{path}: the first record is neither a statement (statement, label), a contrastive "
        "pair (prompt/positive/negative) nor a chat (messages)"
    )


def _pair_chat(pair: ContrastPair, positive: bool, index: int) -> Chat:
    if pair.messages is None:
        raise DataError(
            f"pair {index + 1} has no prompt or messages; tuning needs chat pairs "
            "(prompt, positive, negative)"
        )
    chat = [{"role": role, "content": content} for role, content in pair.messages]
    reply = pair.positive if positive else pair.negative
    return [*chat, {"role": "assistant", "content": reply}]


def tuning_chats(
    source: str | os.PathLike[str],
    *,
    kind: str = "auto",
    completions: str = "honest",
    instructions: str = "both",
    templates: HonestyTemplates | None = None,
    include_held_out: bool = False,
    held_out_fraction: float = 0.2,
    limit: int | None = None,
) -> TuningData:
    """Read training chats from statements, contrastive pairs or chats.

    Args:
        source: a file, or ``builtin:facts`` / ``builtin:honesty`` / ``builtin:happy_sad``.
        kind: ``"auto"`` (detect) or one of ``"facts"``, ``"pairs"``, ``"chats"``.
        completions: for statements, ``"honest"``, ``"dishonest"`` or ``"matching"`` (see
            :func:`~steerlab.data.honesty.honesty_chats`); for pairs, ``"honest"`` /
            ``"positive"`` takes the positive reply, ``"dishonest"`` / ``"negative"`` the
            negative one. Ignored for chats.
        instructions: for statements: ``"both"``, ``"honest"``, ``"dishonest"``, ``"none"``.
        templates: prompt wording for statements (default :class:`HonestyTemplates`).
        include_held_out: also train on the statements kept for evaluation (off by default,
            so that ``steerlab eval`` measures facts the model was not tuned on).
        held_out_fraction: share of statements kept for evaluation.
        limit: use only the first N records (statements before the split).

    Returns:
        A :class:`TuningData`.

    Raises:
        DataError: malformed files (with FILE:LINE), no chats left.
        SpecError: an unknown kind or completion for the data's kind.
    """
    check_choice(kind, "kind", KINDS)
    found = detect_kind(source) if kind == "auto" else kind
    name = str(source)
    if found == "facts":
        statements: list[Statement] = load_statements(name, limit=limit)
        train = (
            statements
            if include_held_out
            else [s for s in statements if not held_out(s.text, held_out_fraction)]
        )
        if not train:
            raise DataError(f"{name}: every statement belongs to the held-out evaluation split")
        chats = honesty_chats(train, templates, completions=completions, instructions=instructions)
        return TuningData(
            tuple(chats),
            "facts",
            name,
            len(statements),
            len(statements) - len(train),
            statements_sha256(statements),
            include_held_out,
        )
    if found == "pairs":
        if completions not in _POSITIVE:
            raise SpecError(
                f"completions {completions!r} does not apply to pairs; "
                "choose honest/positive or dishonest/negative"
            )
        pairs = load_pairs(name, limit=limit)
        chats = [_pair_chat(p, _POSITIVE[completions], i) for i, p in enumerate(pairs)]
        return TuningData(tuple(chats), "pairs", name, len(pairs))
    chats = load_chats(name, limit=limit)
    return TuningData(tuple(chats), "chats", name, len(chats))
