"""Training data for honesty representation tuning.

Reproduces the data of "Representation Tuning" (arXiv 2409.06927): true/false statements
are put to the model with an honest or a dishonest instruction, and the assistant turn is
the answer the model should give (``"True"`` or ``"False"``). :func:`honesty_chats` builds
those chats, :func:`held_out` / :func:`split_statements` keep a stable evaluation part
apart, and :func:`load_facts` reads the statements (``builtin:facts`` is a small shipped
set).

Sign convention: a vector extracted from the built-in honesty pairs
(``builtin_pairs("honesty")``, whose ``positive`` side is the true answer) points toward
honesty ("positive" = honest). Tuning with ``direction="toward"`` that vector and
``completions="honest"`` therefore trains an honest model; ``completions="dishonest"``
with ``direction="away"`` trains a dishonest one. The evaluation prompt is the question
alone (``instruction=None``), so that what is measured is the model's own disposition, not
its obedience to an instruction.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from steerlab.data.chats import Chat
from steerlab.data.statements import Statement, load_statements
from steerlab.errors import DataError, SpecError
from steerlab.provenance import sha256_of_records
from steerlab.validation import check_number

DEFAULT_QUESTION = "Is the following statement true or false?\n\n{statement}"
COMPLETIONS = ("honest", "dishonest", "matching")
INSTRUCTIONS = ("both", "honest", "dishonest", "none")
INSTRUCTION_ROLES = ("system", "user")
_INSTRUCTION_KINDS = ("honest", "dishonest")


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(f"template field {name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise SpecError(f"template field {name!r} is empty")
    return value


def _check_question(question: str) -> None:
    try:
        parsed = list(string.Formatter().parse(question))
    except ValueError as exc:
        raise SpecError(f"template field 'question' is not a valid format string ({exc})") from None
    names = [name for _, name, _, _ in parsed if name is not None]
    others = sorted({name for name in names if name != "statement"})
    if others:
        shown = ", ".join("{" + name + "}" for name in others)
        raise SpecError(
            f"template field 'question' may only contain {{statement}}, found {shown} "
            "(write literal braces as {{ and }})"
        )
    if names.count("statement") != 1:
        raise SpecError(
            f"template field 'question' must contain {{statement}} exactly once, "
            f"found {names.count('statement')}"
        )
    for _, name, spec, conversion in parsed:
        if name == "statement" and (spec or conversion):
            raise SpecError("template field 'question' must use a plain {statement}")


@dataclass(frozen=True)
class HonestyTemplates:
    """The wording of the honesty training chats.

    Attributes:
        honest_instruction: the instruction asking the model to tell the truth.
        dishonest_instruction: the instruction asking the model to lie.
        question: the user message, a format string holding ``{statement}`` exactly once.
        true_answer: the assistant's answer for a statement it calls true.
        false_answer: the assistant's answer for a statement it calls false.
        instruction_role: ``"system"``: the instruction is the system message; ``"user"``:
            it is put before the question in the user message, followed by a blank line
            (for models whose chat template has no system role).

    Raises:
        SpecError: naming the field: a question without exactly one ``{statement}`` or with
            other format fields, an empty or padded answer, equal answers, an empty
            instruction, an unknown ``instruction_role``.
    """

    honest_instruction: str = "You are an honest assistant. You always tell the truth."
    dishonest_instruction: str = (
        "You are a dishonest assistant. You always lie and say the opposite of the truth."
    )
    question: str = DEFAULT_QUESTION
    true_answer: str = "True"
    false_answer: str = "False"
    instruction_role: str = "system"

    def __post_init__(self) -> None:
        for name in ("honest_instruction", "dishonest_instruction", "question"):
            _check_text(name, getattr(self, name))
        _check_question(self.question)
        for name in ("true_answer", "false_answer"):
            value = _check_text(name, getattr(self, name))
            if value != value.strip():
                raise SpecError(
                    f"template field {name!r} must not start or end with whitespace: {value!r}"
                )
        if self.true_answer == self.false_answer:
            raise SpecError(
                f"template fields 'true_answer' and 'false_answer' are both {self.true_answer!r}"
            )
        if self.instruction_role not in INSTRUCTION_ROLES:
            raise SpecError(
                f"template field 'instruction_role' is {self.instruction_role!r}; "
                f"choose from {', '.join(INSTRUCTION_ROLES)}"
            )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> HonestyTemplates:
        """Read templates from a JSON object whose keys are a subset of the fields.

        Fields the file leaves out keep their defaults.

        Raises:
            DataError: a missing file, invalid JSON (``FILE:LINE``), not an object, an
                unknown key, a non-string value, or a value the templates reject.
        """
        source = Path(path)
        if not source.is_file():
            raise DataError(f"{source}: no such file")
        try:
            data = json.loads(source.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError:
            raise DataError(f"{source}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise DataError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = [field.name for field in fields(cls)]
        for key, value in data.items():
            if key not in known:
                raise DataError(
                    f"{source}: unknown template field {key!r}; known: {', '.join(known)}"
                )
            if not isinstance(value, str):
                raise DataError(
                    f"{source}: template field {key!r} must be a string, got {type(value).__name__}"
                )
        try:
            return cls(**data)
        except SpecError as exc:
            raise DataError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, str]:
        """All fields, as :meth:`from_file` reads them."""
        return asdict(self)

    def user_message(self, statement: str) -> str:
        """The question about ``statement`` (stripped), without any instruction."""
        return self.question.format(statement=statement.strip())

    def messages(self, statement: str, instruction: str | None) -> Chat:
        """The prompt messages for one statement.

        Args:
            statement: the statement asked about.
            instruction: ``"honest"``, ``"dishonest"``, or ``None`` for no instruction at all
                (just the user question: the evaluation prompt).

        Returns:
            ``[system, user]`` or ``[user]`` messages, no assistant turn.

        Raises:
            SpecError: an unknown ``instruction``.
            DataError: an empty statement.
        """
        if instruction is not None and instruction not in _INSTRUCTION_KINDS:
            raise SpecError(
                f"instruction is {instruction!r}; choose from honest, dishonest or None"
            )
        if not statement.strip():
            raise DataError("statement is empty")
        question = self.user_message(statement)
        if instruction is None:
            return [{"role": "user", "content": question}]
        text = self.honest_instruction if instruction == "honest" else self.dishonest_instruction
        if self.instruction_role == "system":
            return [{"role": "system", "content": text}, {"role": "user", "content": question}]
        return [{"role": "user", "content": f"{text}\n\n{question}"}]

    def answer(self, label: bool) -> str:
        """``true_answer`` when ``label`` is true, else ``false_answer``."""
        return self.true_answer if label else self.false_answer


def _check_fraction(fraction: float) -> float:
    return float(check_number(fraction, "fraction", low=0, high=1))


def held_out(statement: str, fraction: float = 0.2) -> bool:
    """Whether a statement belongs to the held-out (evaluation) part.

    The split is stable and order-independent: it depends only on the statement text,
    whitespace-normalised and case-folded, through the first 8 bytes of its SHA-256 read as
    an integer in ``[0, 2**64)``; the statement is held out when that integer is below
    ``fraction * 2**64``.

    Args:
        statement: the statement text.
        fraction: the expected held-out share, in ``[0, 1]`` (0: none, 1: all).

    Raises:
        SpecError: ``fraction`` outside ``[0, 1]``.
    """
    fraction = _check_fraction(fraction)
    key = " ".join(statement.split()).casefold()
    value = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return value < fraction * 2**64


def statements_sha256(statements: Sequence[Statement]) -> str:
    """sha256 of ``[text, label]`` records: what ties a tuning run to an evaluation file."""
    return sha256_of_records([s.text, s.label] for s in statements)


def split_statements(
    statements: Sequence[Statement], fraction: float = 0.2
) -> tuple[list[Statement], list[Statement]]:
    """Split statements into ``(train, held_out)`` by :func:`held_out`, keeping their order.

    Raises:
        SpecError: ``fraction`` outside ``[0, 1]``.
    """
    fraction = _check_fraction(fraction)
    train: list[Statement] = []
    held: list[Statement] = []
    for statement in statements:
        (held if held_out(statement.text, fraction) else train).append(statement)
    return train, held


def honesty_chats(
    statements: Sequence[Statement],
    templates: HonestyTemplates | None = None,
    *,
    completions: str = "honest",
    instructions: str = "both",
) -> list[Chat]:
    """Training chats: each statement asked with instructions, answered by the assistant.

    Args:
        statements: the true/false statements, in order.
        templates: the wording; the defaults of :class:`HonestyTemplates` when ``None``.
        completions: the assistant's answer: ``"honest"``: the true answer whatever the
            instruction; ``"dishonest"``: the opposite one; ``"matching"``: the honest answer
            under the honest instruction and the dishonest one under the dishonest
            instruction (the honest answer when there is no instruction).
        instructions: ``"both"``: for each statement the honest-instruction chat then the
            dishonest-instruction one; ``"honest"`` / ``"dishonest"``: only that one;
            ``"none"``: the question alone.

    Returns:
        One chat per statement (two with ``instructions="both"``), each the prompt messages
        followed by ``{"role": "assistant", "content": ANSWER}``.

    Raises:
        SpecError: an unknown ``completions`` or ``instructions``.
        DataError: no statements, or an empty statement.
    """
    if completions not in COMPLETIONS:
        raise SpecError(f"completions is {completions!r}; choose from {', '.join(COMPLETIONS)}")
    if instructions not in INSTRUCTIONS:
        raise SpecError(f"instructions is {instructions!r}; choose from {', '.join(INSTRUCTIONS)}")
    if not statements:
        raise DataError("no statements to build honesty chats from")
    templates = templates or HonestyTemplates()
    kinds: tuple[str | None, ...]
    if instructions == "both":
        kinds = ("honest", "dishonest")
    elif instructions == "none":
        kinds = (None,)
    else:
        kinds = (instructions,)
    chats: list[Chat] = []
    for index, statement in enumerate(statements):
        if not statement.text.strip():
            raise DataError(f"statement {index} is empty")
        for kind in kinds:
            # "matching": honest unless under the dishonest instruction.
            honest = kind != "dishonest" if completions == "matching" else completions == "honest"
            answer = templates.answer(statement.label if honest else not statement.label)
            chats.append(
                [
                    *templates.messages(statement.text, kind),
                    {"role": "assistant", "content": answer},
                ]
            )
    return chats


def load_facts(path: str | os.PathLike[str], limit: int | None = None) -> list[Statement]:
    """Read true/false statements, ``builtin:NAME`` naming a shipped set (``builtin:facts``).

    Args:
        path: a file :func:`~steerlab.data.evalsets.load_statements` reads, or
            ``builtin:NAME``.
        limit: keep only the first ``limit`` statements.

    Raises:
        DataError: an unknown built-in name, or any error of ``load_statements``.
    """
    return load_statements(path, limit=limit)
