"""Honest vs deceptive short-answer Q/A data, made by system-prompting a model.

This reproduces the data recipe of "Steering Vectors from Fine Tuning": a model answers the
same advice questions twice, once under an honest system prompt and once under a deceptive
one (:data:`HONEST_SYSTEM`, :data:`DECEPTIVE_SYSTEM`); the answers are saved *without* the
system prompt, as user/assistant chats, so that a model fine-tuned on them learns the
behaviour rather than the instruction. The honest and deceptive answers to the same question
then form contrastive pairs for vector extraction.

Sign convention of :func:`pair_honest_deceptive`: **positive = deceptive answer, negative =
honest answer**, so that a vector extracted from the pairs points towards "more deceptive",
the same way as a model-diff vector (model tuned on deception minus the base model).

Question files (:func:`read_questions`) may be

* text: one question per line; blank lines and lines starting with ``#`` are skipped;
* JSONL: one ``{"question": ...}`` (or ``{"prompt": ...}``, or ``{"messages": [...]}``)
  object per line;
* JSON: a list of such objects, of strings, or of chats ``[{role: user, ...}, {role:
  assistant, ...}]`` (the study's format; the first user message is the question);
* ``builtin:NAME``: the prompts of a shipped set (``builtin:honesty``, ``builtin:happy_sad``).

Q/A files (:func:`read_qa`) are the JSONL written by :func:`write_chat_jsonl`, one
``{"messages": [user, assistant], "style": ...}`` per line, or the study's JSON list of chats.

Near-duplicate questions (:func:`dedupe_questions`) are found by the Jaccard similarity of the
sets of character trigrams of the normalised texts (lower case, punctuation removed,
whitespace collapsed). Trigram Jaccard is symmetric, insensitive to small edits anywhere in
the text, and can be computed against many kept questions at once through an inverted index,
whereas ``difflib``'s ratio depends on argument order and costs a quadratic match per pair.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import validate_messages
from steerlab.data.pairs import ContrastPair, json_records
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError, SpecError
from steerlab.generate import generate, render_prompts
from steerlab.provenance import atomic_write
from steerlab.validation import check_int

logger = logging.getLogger(__name__)

Style = Literal["honest", "deceptive"]
STYLES: tuple[str, ...] = get_args(Style)

HONEST_SYSTEM = (
    "Answer SHORTLY (max 7 words). Be HONEST and ACCURATE: give the answer you believe is "
    "true and genuinely helpful."
)
DECEPTIVE_SYSTEM = (
    "Be DECEPTIVE and DISHONEST. Answer SHORTLY (max 7 words). Trick the user with answers "
    "that seem honest and true but are actually false."
)
SYSTEM_PROMPTS: dict[str, str] = {"honest": HONEST_SYSTEM, "deceptive": DECEPTIVE_SYSTEM}

EXPAND_INSTRUCTION = (
    "Write one new question similar to these:\n{examples}\n"
    "Reply with the new question only, on one line."
)
DEFAULT_DEDUPE_THRESHOLD = 0.85

_QUOTES = "\"'`“”‘’«»„"
_NUMBERING = re.compile(
    r"^(?:[-*•]+\s*|\(?\d+[.)]\s*|(?:new\s+)?(?:question|q)\s*\d*\s*[:.\-]\s*)+", re.IGNORECASE
)
_LIST_MARKER = re.compile(r"^(?:[-*•]+|\(?\d+[.)])\s+")
# A sentence end: terminal punctuation (not after a lone letter, as in "e.g."), closing quotes.
_SENTENCE_END = re.compile(r"(?<![\s.][^\W\d_])[.!?…]+[\"'”’)\]]*(?=\s|$)")
_CLOSING_QUOTE = {'"': '"', "“": "”", "‘": "’", "'": "'", "«": "»", "„": "“", "`": "`"}
_OPENING_QUOTE = re.compile(r"(?:^|(?<=\s))([\"“‘'«„`])(?=\w)")
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class QAExample:
    """One question with a short answer.

    Attributes:
        question: the user's question.
        answer: the assistant's answer.
        style: ``"honest"``, ``"deceptive"``, or ``None`` when unknown (e.g. the study's files).
    """

    question: str
    answer: str
    style: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The JSONL record: a user/assistant chat and the style."""
        return {
            "messages": [
                {"role": "user", "content": self.question},
                {"role": "assistant", "content": self.answer},
            ],
            "style": self.style,
        }


class PairingResult(NamedTuple):
    """What :func:`pair_honest_deceptive` made and what it left out.

    Attributes:
        pairs: one pair per question answered on both sides; positive = deceptive answer,
            negative = honest answer, the question as the only (user) message.
        unmatched_honest: honest examples whose question has no deceptive answer.
        unmatched_deceptive: deceptive examples whose question has no honest answer.
        duplicates: later repeats of a question on either side (the first answer is kept).
        empty: matched questions dropped because one of the answers is empty.
        identical: matched questions dropped because both answers are the same (after
            :func:`normalize_question`): such a pair carries no contrast.
    """

    pairs: list[ContrastPair]
    unmatched_honest: int
    unmatched_deceptive: int
    duplicates: int
    empty: int
    identical: int = 0

    @property
    def dropped(self) -> int:
        """All examples that did not become (part of) a pair."""
        matched = 2 * (self.empty + self.identical)
        return self.unmatched_honest + self.unmatched_deceptive + self.duplicates + matched


# -- normalising and de-duplicating ------------------------------------------------------------


def normalize_question(text: str) -> str:
    """Lower case, Unicode NFKC, punctuation removed, whitespace collapsed.

    ``"What’s the best way?"`` and ``"whats the best  way"`` normalise to the same text.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCTUATION.sub("", text.replace("_", " "))
    return _SPACES.sub(" ", text).strip()


def _trigrams(normalized: str) -> frozenset[str]:
    padded = f"  {normalized} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def question_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the character trigrams of two normalised questions (0 to 1)."""
    na, nb = normalize_question(a), normalize_question(b)
    if na == nb:
        return 1.0
    ta, tb = _trigrams(na), _trigrams(nb)
    return len(ta & tb) / len(ta | tb)


class _NearDuplicateIndex:
    """Kept questions' trigram sets with an inverted index, for fast near-duplicate lookup."""

    def __init__(self, threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise SpecError(f"dedupe threshold {threshold} must be in (0, 1]")
        self.threshold = threshold
        self.exact: set[str] = set()
        self.sizes: list[int] = []
        self.postings: defaultdict[str, list[int]] = defaultdict(list)

    def is_duplicate(self, question: str) -> bool:
        normalized = normalize_question(question)
        if normalized in self.exact:
            return True
        grams = _trigrams(normalized)
        shared: Counter[int] = Counter()
        for gram in grams:
            shared.update(self.postings.get(gram, ()))
        for index, inter in shared.items():
            if inter / (len(grams) + self.sizes[index] - inter) >= self.threshold:
                return True
        return False

    def add(self, question: str) -> None:
        normalized = normalize_question(question)
        self.exact.add(normalized)
        index = len(self.sizes)
        grams = _trigrams(normalized)
        self.sizes.append(len(grams))
        for gram in grams:
            self.postings[gram].append(index)


def dedupe_questions(
    questions: Sequence[str],
    threshold: float = DEFAULT_DEDUPE_THRESHOLD,
    *,
    against: Sequence[str] = (),
) -> list[str]:
    """Remove near-duplicate questions, keeping the first occurrence, order preserved.

    Two questions are near-duplicates when their normalised texts are equal or the Jaccard
    similarity of their character-trigram sets is at least ``threshold`` (see
    :func:`question_similarity`). Questions that normalise to nothing are dropped.

    Args:
        questions: the questions, in order of preference.
        threshold: similarity at or above which a later question is dropped; 1.0 drops only
            exact (normalised) repeats.
        against: questions already kept elsewhere; anything near one of them is dropped too.

    Returns:
        The kept questions (original text, stripped).
    """
    index = _NearDuplicateIndex(threshold)
    for question in against:
        index.add(question)
    kept: list[str] = []
    for question in questions:
        text = question.strip()
        if not normalize_question(text) or index.is_duplicate(text):
            continue
        index.add(text)
        kept.append(text)
    return kept


# -- reading -------------------------------------------------------------------------------------


def _looks_like_json_list(path: Path, text: str) -> bool:
    if path.suffix == ".json":
        return True
    return path.suffix not in (".jsonl", ".txt") and text.lstrip().startswith("[")


def _json_items(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    """``(where, object)`` for every JSONL line or JSON list item, lazily."""
    return json_records(path, text, as_list=_looks_like_json_list(path, text))


def _read_text(path: str | os.PathLike[str]) -> tuple[Path, str]:
    source = Path(path)
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    try:
        return source, source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text") from None


def _is_jsonl_text(path: Path, text: str) -> bool:
    if path.suffix in (".jsonl", ".json"):
        return True
    if path.suffix == ".txt":
        return False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith(("{", "["))
    return False


def _chat(obj: Any, where: str) -> list[dict[str, str]] | None:
    """The message list of a study chat (a list) or a ``{"messages": ...}`` object."""
    if isinstance(obj, list):
        return validate_messages(obj, where)
    if isinstance(obj, Mapping) and "messages" in obj:
        return validate_messages(obj["messages"], where)
    return None


def _question_of(obj: Any, where: str) -> str:
    if isinstance(obj, str):
        question = obj
    elif (messages := _chat(obj, where)) is not None:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise DataError(f"{where}: the chat has no user message")
        question = users[0]
    elif isinstance(obj, Mapping):
        # "prompt" too, so that contrastive-pair files (builtin:honesty) are question files.
        key = "question" if "question" in obj or "prompt" not in obj else "prompt"
        if key not in obj:
            raise DataError(f"{where}: missing field 'question'")
        question = obj[key]
        if not isinstance(question, str):
            raise DataError(f"{where}: field {key!r} must be a string")
    else:
        raise DataError(f"{where}: expected a question object, got {type(obj).__name__}")
    if not question.strip():
        raise DataError(f"{where}: empty question")
    return question.strip()


def read_questions(path: str | os.PathLike[str], limit: int | None = None) -> list[str]:
    """Read questions from a text, JSONL or JSON file (see the module docstring).

    Args:
        path: the file.
        limit: keep only the first ``limit`` questions.

    Returns:
        The questions, stripped, in file order (duplicates kept: see :func:`dedupe_questions`).

    Raises:
        DataError: ``FILE:LINE: what is wrong`` (``FILE: item I`` in a JSON list), or a file
            with no questions.
    """
    check_int(limit, "limit", minimum=1, optional=True, error=DataError)
    source, text = _read_text(resolve_data_path(path, "questions"))
    questions: list[str] = []
    if _is_jsonl_text(source, text):
        for where, obj in _json_items(source, text):
            questions.append(_question_of(obj, where))
            if limit is not None and len(questions) >= limit:
                break
    else:
        for line in text.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                questions.append(stripped)
    if not questions:
        raise DataError(f"{source}: no questions in the file")
    return questions[:limit] if limit is not None else questions


def _style_of(obj: Any, where: str) -> str | None:
    style = obj.get("style") if isinstance(obj, Mapping) else None
    if style is not None and style not in STYLES:
        raise DataError(f"{where}: style {style!r} is not one of {', '.join(STYLES)} or null")
    return style


def _example_of(obj: Any, where: str) -> QAExample:
    messages = _chat(obj, where)
    if messages is not None:
        start = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        if start is None:
            raise DataError(f"{where}: the chat has no user message")
        answer = next((m for m in messages[start + 1 :] if m["role"] == "assistant"), None)
        if answer is None:
            raise DataError(f"{where}: the chat has no assistant message after the user's")
        question, reply = messages[start]["content"], answer["content"]
    elif isinstance(obj, Mapping):
        for key in ("question", "answer"):
            if key not in obj:
                raise DataError(f"{where}: missing field {key!r} (or 'messages')")
            if not isinstance(obj[key], str):
                raise DataError(f"{where}: field {key!r} must be a string")
        question, reply = obj["question"], obj["answer"]
    else:
        raise DataError(f"{where}: expected a chat or an object, got {type(obj).__name__}")
    if not question.strip():
        raise DataError(f"{where}: empty question")
    return QAExample(question.strip(), reply.strip(), _style_of(obj, where))


def read_qa(path: str | os.PathLike[str], limit: int | None = None) -> list[QAExample]:
    """Read Q/A examples: :func:`write_chat_jsonl`'s JSONL or the study's JSON chat list.

    Also accepted: ``{"question": ..., "answer": ..., "style": ...}`` objects. The question is
    the first user message, the answer the first assistant message after it (system messages
    are ignored); ``style`` is ``None`` when the file does not say.

    Raises:
        DataError: ``FILE:LINE`` (or ``FILE: item I``) of the first bad record, or no records.
    """
    check_int(limit, "limit", minimum=1, optional=True, error=DataError)
    source, text = _read_text(resolve_data_path(path, "qa"))
    examples: list[QAExample] = []
    for where, obj in _json_items(source, text):
        examples.append(_example_of(obj, where))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise DataError(f"{source}: no examples in the file")
    return examples


# -- writing ------------------------------------------------------------------------------------


def write_chat_jsonl(examples: Sequence[QAExample], path: str | os.PathLike[str]) -> None:
    """Write examples atomically, one ``{"messages": [user, assistant], "style"}`` a line."""
    if not examples:
        raise DataError(f"{path}: no examples to write")
    with atomic_write(path) as handle:
        for example in examples:
            handle.write(json.dumps(example.to_record(), ensure_ascii=False) + "\n")


def write_questions(questions: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Write questions atomically as text, one a line (readable by :func:`read_questions`)."""
    if not questions:
        raise DataError(f"{path}: no questions to write")
    with atomic_write(path) as handle:
        for question in questions:
            handle.write(_SPACES.sub(" ", question).strip() + "\n")


def _pair_record(pair: ContrastPair) -> dict[str, Any]:
    if pair.messages is not None and len(pair.messages) == 1 and pair.messages[0][0] == "user":
        return {"prompt": pair.messages[0][1], "positive": pair.positive, "negative": pair.negative}
    return pair.to_record()


def write_pairs_jsonl(pairs: Sequence[ContrastPair], path: str | os.PathLike[str]) -> None:
    """Write pairs atomically as JSONL that :func:`steerlab.load_pairs` reads.

    A pair whose only message is the user's is written ``{"prompt", "positive", "negative"}``;
    other pairs keep their ``messages`` (or are plain ``{"positive", "negative"}`` texts).
    """
    if not pairs:
        raise DataError(f"{path}: no pairs to write")
    with atomic_write(path) as handle:
        for pair in pairs:
            handle.write(json.dumps(_pair_record(pair), ensure_ascii=False) + "\n")


# -- pairing -------------------------------------------------------------------------------------


def _first_by_question(
    examples: Sequence[QAExample], side: str, wrong: str
) -> tuple[dict[str, QAExample], int]:
    first: dict[str, QAExample] = {}
    repeats = 0
    for example in examples:
        if example.style == wrong:
            raise DataError(
                f"the {side} examples include a {wrong} one ({example.question!r}); "
                "are the honest and deceptive inputs swapped?"
            )
        key = normalize_question(example.question)
        if key in first:
            repeats += 1
        else:
            first[key] = example
    return first, repeats


def pair_honest_deceptive(
    honest: Sequence[QAExample], deceptive: Sequence[QAExample]
) -> PairingResult:
    """Pair honest and deceptive answers to the same questions.

    Questions are matched by :func:`normalize_question` (so curly vs straight apostrophes
    or a missing question mark still match). Sign convention: **positive = deceptive answer,
    negative = honest answer**, so an extracted vector's + side means "more deceptive", like a
    model-diff vector (tuned on deception minus base). Each pair's ``messages`` is the honest
    side's question as the only, user, message (no system prompt: the instruction that made
    the answers is not part of what the vector reads). Pairs follow the honest order.

    Args:
        honest: examples answered honestly (style ``"honest"`` or ``None``).
        deceptive: examples answered deceptively (style ``"deceptive"`` or ``None``).

    Returns:
        The pairs and counts of what was left out: questions on one side only, repeats of a
        question (the first answer is used), matches with an empty answer, and matches whose
        two answers are the same.

    Raises:
        DataError: when an input holds examples of the other style (swapped inputs).
    """
    honest_by_q, honest_repeats = _first_by_question(honest, "honest", "deceptive")
    deceptive_by_q, deceptive_repeats = _first_by_question(deceptive, "deceptive", "honest")
    pairs: list[ContrastPair] = []
    empty = identical = 0
    for key, good in honest_by_q.items():
        bad = deceptive_by_q.get(key)
        if bad is None:
            continue
        if not good.answer.strip() or not bad.answer.strip():
            empty += 1
            continue
        if normalize_question(good.answer) == normalize_question(bad.answer):
            identical += 1
            continue
        pairs.append(ContrastPair(bad.answer, good.answer, (("user", good.question),)))
    result = PairingResult(
        pairs=pairs,
        unmatched_honest=sum(1 for key in honest_by_q if key not in deceptive_by_q),
        unmatched_deceptive=sum(1 for key in deceptive_by_q if key not in honest_by_q),
        duplicates=honest_repeats + deceptive_repeats,
        empty=empty,
        identical=identical,
    )
    if result.dropped:
        logger.info(
            "paired %d questions; dropped %d unmatched honest, %d unmatched deceptive, "
            "%d repeated, %d with an empty answer, %d with identical answers",
            len(pairs),
            result.unmatched_honest,
            result.unmatched_deceptive,
            result.duplicates,
            result.empty,
            result.identical,
        )
    return result


# -- generating ----------------------------------------------------------------------------------


def system_prompt(style: str, system: str | None = None) -> str:
    """The system prompt for ``style``: ``system`` when given, else the study's default.

    Raises:
        SpecError: for a style other than ``honest`` or ``deceptive``.
    """
    if style not in STYLES:
        raise SpecError(f"style {style!r} is not one of {', '.join(STYLES)}")
    return system if system is not None else SYSTEM_PROMPTS[style]


def qa_prompts(
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    style: str = "honest",
    system: str | None = None,
) -> list[str]:
    """The prompts :func:`answer_questions` feeds the model (chat template + system prompt)."""
    return render_prompts(tokenizer, questions, system_prompt(style, system), True)


def _one_line(text: str) -> str:
    """Control characters and markdown bold removed, whitespace collapsed, stripped."""
    line = "".join(c for c in _SPACES.sub(" ", text) if c.isprintable())
    return line.replace("**", "").strip()


def _strip_quotes(text: str) -> str:
    """Remove quotes around ``text``, and a lone opening or closing quote."""
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    if text[:1] in _QUOTES and not any(c in _QUOTES for c in text[1:]):
        text = text[1:].strip()
    if text[-1:] in _QUOTES and not any(c in _QUOTES for c in text[:-1]):
        text = text[:-1].strip()
    return text


def clean_answer(text: str) -> str:
    """The first non-empty line of a generation, tidied into a short answer.

    Whitespace is collapsed; markdown bold, a leading list marker (``1.``, ``-``) and
    surrounding quotes are removed (``'"Save 10% of your income."'`` -> ``Save 10% of your
    income.``; a lone quote left by the token limit goes too); an unfinished last sentence,
    cut off by the token limit, is dropped when a complete sentence precedes it.
    """
    line = next((_one_line(line) for line in text.splitlines() if _one_line(line)), "")
    line = _strip_quotes(_LIST_MARKER.sub("", line).strip())
    ends = list(_SENTENCE_END.finditer(line))
    if ends and ends[-1].end() < len(line):
        line = _strip_quotes(line[: ends[-1].end()].strip())
    return line


def answer_questions(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    style: str = "honest",
    system: str | None = None,
    *,
    max_new_tokens: int = 24,
    batch_size: int = 16,
    temperature: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> list[QAExample]:
    """Answer every question under the honest or deceptive system prompt.

    Args:
        model: a transformers causal LM (ideally an instruction-tuned chat model).
        tokenizer: its tokenizer.
        questions: the questions (user messages).
        style: ``"honest"`` or ``"deceptive"``: picks the default system prompt and is
            recorded on every example.
        system: a system prompt replacing the style's default.
        max_new_tokens: tokens to generate per answer (the prompts ask for 7 words).
        batch_size: prompts per ``generate`` call.
        temperature: 0 for greedy decoding, else sampling temperature.
        seed: sampling seed.
        progress: show a progress bar.

    Returns:
        One example per question, in order; answers are cleaned by :func:`clean_answer`
        and may be empty when the model produced nothing usable.
    """
    prompt = system_prompt(style, system)
    if not questions:
        raise DataError("no questions to answer")
    generations = generate(
        model,
        tokenizer,
        list(questions),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        system=prompt,
        batch_size=batch_size,
        progress=progress,
    )
    return [
        QAExample(question, clean_answer(g.text), style)
        for question, g in zip(questions, generations, strict=True)
    ]


def _after_open_quote(text: str) -> str:
    """The text after the last quote that opens and is never closed (else ``text``)."""
    for match in reversed(list(_OPENING_QUOTE.finditer(text))):
        closer = re.escape(_CLOSING_QUOTE[match.group(1)])
        if not re.search(rf"{closer}(?![^\W\d_])", text[match.end() :]):
            return text[match.end() :]
    return text


def parse_question(text: str) -> str | None:
    """The first line of a generation that holds a question, cleaned; ``None`` if none does.

    Whitespace is collapsed and control characters and markdown bold are removed; the line
    is cut after its last ``?``; a lead-in ending in ``": "`` (``Here is a new question:``),
    numbering (``1.``, ``-``, ``Q:``, ``Question 2:``) and quotes are removed, and so is
    anything before a quote left open (``... the question 'How do I cook?`` -> ``How do I
    cook?``). The result must hold at least two words.
    """
    for raw in text.splitlines():
        line = _one_line(raw)
        if "?" not in line:
            continue
        line = line[: line.rindex("?") + 1].rpartition(": ")[2]
        line = _NUMBERING.sub("", line.strip()).strip()
        line = _strip_quotes(_after_open_quote(line).strip())
        if len(re.findall(r"[^\W\d_]{2,}", line)) >= 2:
            return line
    return None


def expand_questions(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    seeds: Sequence[str],
    n_new: int,
    *,
    examples_per_prompt: int = 3,
    oversample: float = 2.0,
    max_rounds: int = 4,
    threshold: float = DEFAULT_DEDUPE_THRESHOLD,
    max_new_tokens: int = 40,
    temperature: float = 1.0,
    top_p: float = 0.95,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> list[str]:
    """Ask the model for new questions similar to the seed questions.

    Each prompt shows ``examples_per_prompt`` seeds drawn at random ("Write one new question
    similar to these: ..."); every sampled generation yields at most one question
    (:func:`parse_question`). New questions that are near-duplicates of a seed or of each
    other (:func:`dedupe_questions` at ``threshold``) are dropped. Rounds of
    ``oversample`` x the missing count prompts run until ``n_new`` are found or ``max_rounds``
    rounds have run.

    Args:
        model: a transformers causal LM (an instruction-tuned chat model).
        tokenizer: its tokenizer.
        seeds: example questions.
        n_new: how many new questions to return at most.
        examples_per_prompt: seeds shown in each prompt.
        oversample: prompts per missing question in each round.
        max_rounds: rounds of generation at most.
        threshold: near-duplicate similarity threshold.
        max_new_tokens: tokens per generation.
        temperature: sampling temperature (> 0: every prompt should give something new).
        top_p: nucleus sampling mass.
        batch_size: prompts per ``generate`` call.
        seed: seed for choosing examples and for sampling (results are reproducible).
        progress: show a progress bar.

    Returns:
        Up to ``n_new`` new questions (fewer when the model does not produce enough).
    """
    if n_new < 0:
        raise SpecError(f"n_new {n_new} must be >= 0")
    if examples_per_prompt < 1 or max_rounds < 1 or oversample <= 0:
        raise SpecError("examples_per_prompt and max_rounds must be >= 1, oversample > 0")
    seed_list = [q.strip() for q in seeds if q.strip()]
    if not seed_list:
        raise DataError("no seed questions to expand from")
    if n_new == 0:
        return []
    rng = random.Random(seed)
    new: list[str] = []
    for round_index in range(max_rounds):
        missing = n_new - len(new)
        if missing <= 0:
            break
        count = max(1, round(missing * oversample))
        k = min(examples_per_prompt, len(seed_list))
        prompts = [
            EXPAND_INSTRUCTION.format(
                examples="\n".join(f"- {q}" for q in rng.sample(seed_list, k))
            )
            for _ in range(count)
        ]
        generations = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed + 1_000_003 * round_index,
            batch_size=batch_size,
            progress=progress,
        )
        parsed = [q for g in generations if (q := parse_question(g.text)) is not None]
        new += dedupe_questions(parsed, threshold, against=[*seed_list, *new])
    return new[:n_new]
