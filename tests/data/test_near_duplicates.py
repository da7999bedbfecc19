"""Near-duplicate questions (steerlab.data.near_duplicates): normalising, similarity, dedupe."""

from __future__ import annotations

import pytest

from steerlab.data.near_duplicates import (
    dedupe_questions,
    normalize_question,
    question_similarity,
)
from steerlab.errors import SpecError


def test_normalize_question() -> None:
    assert normalize_question("  What’s the BEST   way?! ") == "whats the best way"
    assert normalize_question("What's the best way") == "whats the best way"


def test_dedupe_removes_near_duplicates_and_keeps_distinct() -> None:
    questions = [
        "How can I improve my writing skills?",
        "What is the capital of France?",
        "how can i improve my writing skills",  # exact after normalisation
        "How can I improve my writing skill?",  # one letter off
        "What’s the best way to learn a new language?",
        "What's the best way to learn a new language",
        "How do I get better at math?",
        "How do I get better at chess?",  # distinct question, similar wording
        "Why is the sky blue?",
        "!!!",  # nothing left after normalisation
    ]
    kept = dedupe_questions(questions)
    assert kept == [
        "How can I improve my writing skills?",
        "What is the capital of France?",
        "What’s the best way to learn a new language?",
        "How do I get better at math?",
        "How do I get better at chess?",
        "Why is the sky blue?",
    ]
    assert dedupe_questions(kept) == kept  # idempotent
    # threshold 1.0 removes only normalised repeats
    strict = dedupe_questions(questions, threshold=1.0)
    assert "How can I improve my writing skill?" in strict
    assert "how can i improve my writing skills" not in strict
    # `against` drops anything near questions kept elsewhere
    assert dedupe_questions(["Why is the sky blue", "Why?"], against=["why is the sky blue?"]) == [
        "Why?"
    ]
    with pytest.raises(SpecError):
        dedupe_questions(questions, threshold=0.0)


def test_question_similarity_is_symmetric_trigram_jaccard() -> None:
    a, b = "How do I get better at math?", "How do I get better at chess?"
    assert question_similarity(a, b) == pytest.approx(question_similarity(b, a))
    assert 0.0 < question_similarity(a, b) < 0.85
    assert question_similarity(a, a.upper()) == 1.0
    assert question_similarity("abc", "xyz") == 0.0
