"""Near-duplicate questions: normalising, trigram similarity, de-duplicating.

Near-duplicate questions (:func:`dedupe_questions`) are found by the Jaccard similarity of the
sets of character trigrams of the normalised texts (lower case, punctuation removed,
whitespace collapsed). Trigram Jaccard is symmetric, insensitive to small edits anywhere in
the text, and can be computed against many kept questions at once through an inverted index,
whereas ``difflib``'s ratio depends on argument order and costs a quadratic match per pair.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence

from steerlab.validation import check_number

DEFAULT_DEDUPE_THRESHOLD = 0.85

_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


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
        self.threshold = check_number(threshold, "dedupe threshold", low=0, low_open=True, high=1)
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
