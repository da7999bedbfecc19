"""Evaluation data sets: multiple choice, A/B, harmful prompts, true/false statements.

Each loader reads one public format from a local file and returns frozen value types:

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

:func:`load_task_data` reads ``KIND:PATH`` (e.g. ``caa:refusal/test_ab.json``). Every loader
also takes ``builtin:NAME`` for a shipped set of its format (:mod:`steerlab.data.registry`).

Bad input raises :class:`~steerlab.errors.DataError` with a one-line message: ``FILE:LINE:``
for CSV rows (the physical line where the row starts, the header being line 1) and JSONL
lines, ``FILE: item N:`` for the N-th (0-based) object of a JSON list.
"""

from __future__ import annotations

import ast
import csv
import importlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError, SpecError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")
_SPLIT_SUFFIXES = ("_test", "_dev", "_val", "_validation", "_train")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+){0,2}")


# ----------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class MultipleChoiceItem:
    """One multiple-choice question (MMLU).

    Attributes:
        question: the question text.
        choices: the answer options, in order (A, B, C, D for MMLU).
        answer: index of the correct option in ``choices``.
        subject: the MMLU subject (e.g. ``"medical_genetics"``), ``None`` when unknown.
    """

    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str | None = None

    @property
    def answer_letter(self) -> str:
        """The letter of the correct option (``"A"`` for index 0)."""
        return LETTERS[self.answer]


@dataclass(frozen=True)
class ABItem:
    """One A/B question of Contrastive Activation Addition.

    Attributes:
        question: the question, with its ``Choices:`` block.
        matching: letter of the answer showing the behaviour, e.g. ``"B"``.
        not_matching: letter of the answer not showing it, e.g. ``"A"``.
        matching_raw: the answer as written in the file, e.g. ``"(B)"``.
        not_matching_raw: the other answer as written in the file, e.g. ``"(A)"``.
    """

    question: str
    matching: str
    not_matching: str
    matching_raw: str
    not_matching_raw: str


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


@dataclass(frozen=True)
class Statement:
    """One true/false statement.

    Attributes:
        text: the statement.
        label: ``True`` when the statement is true.
    """

    text: str
    label: bool


EvalItem = (
    MultipleChoiceItem | ABItem | HarmfulPrompt | TruthfulQAMCItem | StereoSetItem | Statement
)


# ----------------------------------------------------------------------------- reading files


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise SpecError(f"limit must be a non-negative integer or None, got {limit!r}")


def _take(items: list[Any], limit: int | None) -> list[Any]:
    return items if limit is None else items[:limit]


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: empty file")
    return text


def _is_json(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        return True
    if suffix in (".csv", ".txt"):
        return False
    return text.lstrip()[:1] in ("[", "{")


def _json_items(path: Path, text: str) -> list[tuple[str, Any]]:
    """``(where, object)`` for each object of a JSON list or a JSONL file."""
    stripped = text.lstrip()
    if path.suffix.lower() != ".jsonl" and stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if not (stripped.startswith("{") and exc.msg == "Extra data"):
                raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        else:
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list of objects (or JSONL)")
            return [(f"{path}: item {i}", item) for i, item in enumerate(data)]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
    return items


def _csv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` for each non-blank CSV row; ``line`` is where the row starts."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"{path}:{start}: malformed CSV ({exc})") from None
        if row and not (len(row) == 1 and not row[0].strip()):
            rows.append((start, row))
        start = reader.line_num + 1
    return rows


def _header(row: Sequence[str]) -> dict[str, int]:
    """Column index by lower-cased name (the first column of a repeated name wins)."""
    names = [name.strip().lower() for name in row]
    return {name: i for i, name in reversed(list(enumerate(names)))}


def _names(row: Sequence[str]) -> str:
    return ",".join(name.strip() for name in row)


def _need_columns(path: Path, line: int, header: dict[str, int], names: Iterable[str]) -> None:
    for name in names:
        if name not in header:
            found = ",".join(sorted(header, key=header.__getitem__))
            raise DataError(f"{path}:{line}: missing column {name!r} (header: {found})")


def _check_width(path: Path, line: int, row: Sequence[str], width: int, what: str) -> None:
    if len(row) != width:
        raise DataError(f"{path}:{line}: expected {width} columns ({what}), got {len(row)}")


def _object(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field {key!r} must be a non-empty string")
    return value


def _optional_text(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string or null")
    return value


def _nonempty(value: str, where: str, name: str) -> str:
    if not value.strip():
        raise DataError(f"{where}: {name} is empty")
    return value


def _looks_like_hub_id(spec: str) -> bool:
    return (
        _HUB_ID.fullmatch(spec) is not None
        and not Path(spec).exists()
        and Path(spec).suffix.lower() not in (".csv", ".json", ".jsonl", ".tsv", ".txt")
    )


def _hub_rows(spec: str, default_config: str | None, default_split: str) -> list[dict[str, Any]]:
    """Rows of a Hub dataset named ``NAME[:CONFIG[:SPLIT]]`` (needs ``datasets``)."""
    try:
        datasets = importlib.import_module("datasets")
    except ImportError:
        raise DataError(
            f"{spec}: no such file; reading it as a Hugging Face Hub dataset needs the "
            "'datasets' package (pip install datasets)"
        ) from None
    name, *rest = spec.split(":")
    config = rest[0] if rest else default_config
    split = rest[1] if len(rest) > 1 else default_split
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # any Hub failure (network, unknown name) is a data error here
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{spec}: could not load from the Hub ({message})") from None
    return [dict(row) for row in dataset]


def _finish(items: list[Any], source: str | Path, what: str, limit: int | None) -> list[Any]:
    if not items:
        raise DataError(f"{source}: no {what} in the file")
    return _take(items, limit)


# ----------------------------------------------------------------------------- MMLU


def _subject_from_name(path: Path) -> str | None:
    stem = path.stem
    for suffix in _SPLIT_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem or None


def _answer_index(value: Any, n_choices: int, where: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: answer must be an index or a letter, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        elif len(text) == 1 and text.upper() in LETTERS[:n_choices]:
            return LETTERS.index(text.upper())
        else:
            letters = ", ".join(LETTERS[:n_choices])
            raise DataError(
                f"{where}: answer must be one of {letters} or 0-{n_choices - 1}, got {value!r}"
            )
    if not isinstance(value, int) or not 0 <= value < n_choices:
        raise DataError(f"{where}: answer must be an index 0-{n_choices - 1}, got {value!r}")
    return value


def _choices(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise DataError(
                    f"{where}: choices must be a list (JSON or Python literal)"
                ) from None
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise DataError(f"{where}: choices must be a list of at least two strings")
    if len(value) > len(LETTERS) or not all(isinstance(c, str) for c in value):
        raise DataError(f"{where}: choices must be a list of at most 26 strings")
    return tuple(value)


def _mc_from_object(obj: Any, where: str) -> MultipleChoiceItem:
    obj = _object(obj, where)
    question = _text(obj, "question", where)
    if "choices" not in obj:
        raise DataError(f"{where}: missing field 'choices'")
    choices = _choices(obj["choices"], where)
    if "answer" not in obj:
        raise DataError(f"{where}: missing field 'answer'")
    answer = _answer_index(obj["answer"], len(choices), where)
    subject = _optional_text(obj, "subject", where)
    return MultipleChoiceItem(question, choices, answer, subject or None)


def _mmlu_csv(path: Path, text: str) -> list[MultipleChoiceItem]:
    rows = _csv_rows(path, text)
    if not rows:
        return []
    first_line, first = rows[0]
    header = _header(first)
    items = []
    if "question" in header and "choices" in header:  # the Hub layout saved as CSV
        _need_columns(path, first_line, header, ("question", "choices", "answer"))
        for line, row in rows[1:]:
            _check_width(path, line, row, len(first), _names(first))
            record: dict[str, Any] = {name: row[i] for name, i in header.items()}
            items.append(_mc_from_object(record, f"{path}:{line}"))
        return items
    if [name.strip().lower() for name in first] == [c.lower() for c in MMLU_COLUMNS]:
        rows = rows[1:]  # a header on the original layout
    subject = _subject_from_name(path)
    for line, row in rows:
        where = f"{path}:{line}"
        _check_width(path, line, row, len(MMLU_COLUMNS), ",".join(MMLU_COLUMNS))
        _nonempty(row[0], where, "question")
        letter = row[5].strip().upper()
        if len(letter) != 1 or letter not in "ABCD":
            raise DataError(f"{where}: answer must be one of A, B, C, D, got {row[5]!r}")
        items.append(MultipleChoiceItem(row[0], tuple(row[1:5]), "ABCD".index(letter), subject))
    return items


def load_mmlu(path: str | os.PathLike[str], limit: int | None = None) -> list[MultipleChoiceItem]:
    """Read MMLU questions.

    Args:
        path: a headerless ``question,A,B,C,D,answer`` CSV (the original release; the subject
            is taken from the file name), a CSV with a ``question,choices,answer[,subject]``
            header, a JSONL / JSON list of ``{question, choices, answer, subject}`` (the Hub
            layout), or a Hub id ``NAME[:CONFIG[:SPLIT]]`` such as ``cais/mmlu:medical_genetics``
            (needs the optional ``datasets`` package; split ``test`` by default).
        limit: keep only the first ``limit`` questions.

    Returns:
        The questions, in file order.

    Raises:
        DataError: ``FILE:LINE: what is wrong`` for the first bad row, a missing or empty file.
    """
    _check_limit(limit)
    path = resolve_data_path(path, "mc")
    spec = os.fspath(path)
    if _looks_like_hub_id(spec):
        rows = _hub_rows(spec, default_config="all", default_split="test")
        items = [_mc_from_object(row, f"{spec}: row {i}") for i, row in enumerate(rows)]
        return _finish(items, spec, "questions", limit)
    source = Path(path)
    text = _read_text(source)
    if _is_json(source, text):
        items = [_mc_from_object(obj, where) for where, obj in _json_items(source, text)]
    else:
        items = _mmlu_csv(source, text)
    return _finish(items, source, "questions", limit)


# ----------------------------------------------------------------------------- CAA A/B


_LETTER_ANSWER = re.compile(r"\(?([A-Za-z])\)?")
_LETTER_PREFIX = re.compile(r"\(([A-Za-z])\)\s")


def _letter(obj: dict[str, Any], key: str, where: str) -> tuple[str, str]:
    raw = _text(obj, key, where)
    text = raw.strip()
    match = _LETTER_ANSWER.fullmatch(text) or _LETTER_PREFIX.match(text)
    if match is None:
        raise DataError(f"{where}: field {key!r} must be an answer letter like '(A)', got {raw!r}")
    return match.group(1).upper(), raw


def _ab_from_object(obj: Any, where: str) -> ABItem:
    obj = _object(obj, where)
    question = _text(obj, "question", where)
    matching, matching_raw = _letter(obj, "answer_matching_behavior", where)
    not_matching, not_matching_raw = _letter(obj, "answer_not_matching_behavior", where)
    if matching == not_matching:
        raise DataError(f"{where}: both answers are {matching!r}; they must differ")
    return ABItem(question, matching, not_matching, matching_raw, not_matching_raw)


def load_ab(path: str | os.PathLike[str], limit: int | None = None) -> list[ABItem]:
    """Read CAA A/B questions (``generate.json`` or ``test_ab.json``).

    Args:
        path: a JSON list (or JSONL) of ``{question, answer_matching_behavior,
            answer_not_matching_behavior}``; answers are letters such as ``"(A)"``.
        limit: keep only the first ``limit`` questions.

    Returns:
        The questions with the letters of both answers (``"A"``) and their raw text.

    Raises:
        DataError: ``FILE: item N: what is wrong``, invalid JSON, a missing or empty file.
    """
    _check_limit(limit)
    path = resolve_data_path(path, "ab")
    source = Path(path)
    text = _read_text(source)
    items = [_ab_from_object(obj, where) for where, obj in _json_items(source, text)]
    return _finish(items, source, "questions", limit)


# ----------------------------------------------------------------------------- harmful prompts


_INSTRUCTION_KEYS = ("instruction", "goal", "prompt")


def _harmful_from_object(obj: Any, where: str) -> HarmfulPrompt:
    obj = _object(obj, where)
    key = next((k for k in _INSTRUCTION_KEYS if k in obj), "instruction")
    instruction = _text(obj, key, where)
    category = _optional_text(obj, "category", where)
    target = _optional_text(obj, "target", where)
    return HarmfulPrompt(instruction, category, target)


def _harmful_csv(path: Path, text: str) -> list[HarmfulPrompt]:
    rows = _csv_rows(path, text)
    if not rows:
        return []
    first_line, first = rows[0]
    header = _header(first)
    key = next((k for k in ("goal", "instruction", "prompt") if k in header), None)
    if key is None:
        raise DataError(
            f"{path}:{first_line}: missing column 'goal' (or 'instruction', 'prompt'); "
            f"header: {_names(first)}"
        )
    items = []
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        _check_width(path, line, row, len(first), _names(first))
        instruction = _nonempty(row[header[key]], where, key)
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
    _check_limit(limit)
    path = resolve_data_path(path, "harmful")
    spec = os.fspath(path)
    if _looks_like_hub_id(spec):
        rows = _hub_rows(spec, default_config=None, default_split="train")
        items = [_harmful_from_object(row, f"{spec}: row {i}") for i, row in enumerate(rows)]
        return _finish(items, spec, "prompts", limit)
    source = Path(path)
    text = _read_text(source)
    if _is_json(source, text):
        items = [_harmful_from_object(obj, where) for where, obj in _json_items(source, text)]
    else:
        items = _harmful_csv(source, text)
    return _finish(items, source, "prompts", limit)


# ----------------------------------------------------------------------------- TruthfulQA


def _label(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
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
    obj = _object(obj, where)
    question = _text(obj, "question", where)
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
    _check_limit(limit)
    path = resolve_data_path(path, "truthfulqa")
    spec = os.fspath(path)
    if _looks_like_hub_id(spec):
        rows = _hub_rows(spec, default_config="multiple_choice", default_split="validation")
        items = [_truthfulqa_from_object(row, f"{spec}: row {i}") for i, row in enumerate(rows)]
        return _finish(items, spec, "questions", limit)
    source = Path(path)
    text = _read_text(source)
    items = [_truthfulqa_from_object(obj, where) for where, obj in _json_items(source, text)]
    return _finish(items, source, "questions", limit)


# ----------------------------------------------------------------------------- StereoSet


def _stereoset_from_object(obj: Any, where: str) -> StereoSetItem:
    obj = _object(obj, where)
    # The published files spell it "anti-stereotype"; accept the identifier form too.
    anti_key = "anti_stereotype" if "anti_stereotype" in obj else "anti-stereotype"
    return StereoSetItem(
        kind=_text(obj, "type", where),
        target=_text(obj, "target", where),
        bias_type=_text(obj, "bias_type", where),
        context=_text(obj, "context", where),
        stereotype=_text(obj, "stereotype", where),
        anti_stereotype=_text(obj, anti_key, where),
        unrelated=_text(obj, "unrelated", where),
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
    _check_limit(limit)
    path = resolve_data_path(path, "stereoset")
    source = Path(path)
    text = _read_text(source)
    items = [_stereoset_from_object(obj, where) for where, obj in _json_items(source, text)]
    return _finish(items, source, "examples", limit)


# ----------------------------------------------------------------------------- statements


def _statement_label(value: Any, where: str) -> bool:
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: label must be 0 or 1, got {value!r}")


def _statement_from_object(obj: Any, where: str) -> Statement:
    obj = _object(obj, where)
    text = _text(obj, "statement", where)
    if "label" not in obj:
        raise DataError(f"{where}: missing field 'label'")
    return Statement(text, _statement_label(obj["label"], where))


def _statements_csv(path: Path, text: str) -> list[Statement]:
    rows = _csv_rows(path, text)
    if not rows:
        return []
    first_line, first = rows[0]
    header = _header(first)
    _need_columns(path, first_line, header, ("statement", "label"))
    items = []
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        _check_width(path, line, row, len(first), _names(first))
        statement = _nonempty(row[header["statement"]], where, "statement")
        items.append(Statement(statement, _statement_label(row[header["label"]], where)))
    return items


def load_statements(path: str | os.PathLike[str], limit: int | None = None) -> list[Statement]:
    """Read true/false statements (RepE facts, geometry-of-truth sets).

    Args:
        path: a CSV whose header holds ``statement`` and ``label`` (0 or 1; other columns
            are ignored), or a JSON list / JSONL of ``{statement, label}``.
        limit: keep only the first ``limit`` statements.

    Returns:
        The statements, in file order.

    Raises:
        DataError: ``FILE:LINE: what is wrong`` for the first bad row, a missing or empty file.
    """
    _check_limit(limit)
    path = resolve_data_path(path, "statements")
    source = Path(path)
    text = _read_text(source)
    if _is_json(source, text):
        items = [_statement_from_object(obj, where) for where, obj in _json_items(source, text)]
    else:
        items = _statements_csv(source, text)
    return _finish(items, source, "statements", limit)


# ----------------------------------------------------------------------------- dispatcher


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
    kind, sep, path = spec.partition(":")
    if not sep or not path.strip() or not kind.strip():
        raise DataError(f"{spec!r}: expected KIND:PATH with KIND one of {kinds}")
    loader = TASK_LOADERS.get(kind.strip().lower())
    if loader is None:
        raise DataError(f"{spec!r}: unknown data kind {kind!r}; choose from {kinds}")
    return loader(path.strip(), limit=limit)
