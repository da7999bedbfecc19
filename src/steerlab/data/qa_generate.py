"""Making Q/A data with a model: system prompts, answering, cleaning, new questions.

A model answers the same questions under an honest and a deceptive system prompt
(:data:`HONEST_SYSTEM`, :data:`DECEPTIVE_SYSTEM`) with :func:`answer_questions`; its first
line is tidied by :func:`clean_answer`. :func:`expand_questions` asks the model for new
questions like some seed questions (parsed by :func:`parse_question`, near-duplicates
dropped).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.data.near_duplicates import DEFAULT_DEDUPE_THRESHOLD, dedupe_questions
from steerlab.data.qa_files import STYLES, QAExample
from steerlab.errors import DataError, SpecError
from steerlab.generate import generate, render_prompts
from steerlab.validation import check_int, check_number

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

_QUOTES = "\"'`“”‘’«»„"
_NUMBERING = re.compile(
    r"^(?:[-*•]+\s*|\(?\d+[.)]\s*|(?:new\s+)?(?:question|q)\s*\d*\s*[:.\-]\s*)+", re.IGNORECASE
)
_LIST_MARKER = re.compile(r"^(?:[-*•]+|\(?\d+[.)])\s+")
# A sentence end: terminal punctuation (not after a lone letter, as in "e.g."), closing quotes.
_SENTENCE_END = re.compile(r"(?<![\s.][^\W\d_])[.!?…]+[\"'”’)\]]*(?=\s|$)")
_CLOSING_QUOTE = {'"': '"', "“": "”", "‘": "’", "'": "'", "«": "»", "„": "“", "`": "`"}
_OPENING_QUOTE = re.compile(r"(?:^|(?<=\s))([\"“‘'«„`])(?=\w)")
_SPACES = re.compile(r"\s+")


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
    check_int(n_new, "n_new", minimum=0)
    check_int(examples_per_prompt, "examples_per_prompt", minimum=1)
    check_int(max_rounds, "max_rounds", minimum=1)
    check_number(oversample, "oversample", low=0, low_open=True)
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
