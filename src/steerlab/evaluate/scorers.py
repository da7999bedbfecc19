"""Pluggable scorers: map one (prompt, response) pair to +1 or -1; the registry by name.

Behaviour expectation ``B = P(aligned) - P(misaligned)`` can be estimated by sampling ``n``
responses per prompt and averaging a score of ``+1`` (the response shows the behaviour) or
``-1`` (it does not). A scorer is anything with a ``name`` and a ``score(prompt, response)``
method returning ``+1`` or ``-1`` (:class:`Scorer`); :class:`BaseScorer` adds a default
``score_many`` (both in :mod:`~steerlab.evaluate.scorer_base`).

Built-in scorers:

- :class:`RefusalScorer`: refusal phrases ("I can't", "I'm sorry, but", "As an AI"...).
- :class:`ABAnswerScorer`: the letter chosen in an A/B question, compared with the letter
  that shows the behaviour (``score_with`` / ``score_many`` take it per prompt).
- :class:`AgreementScorer`: agreement or disagreement with a statement, negation-aware.
  (These three read text by rules: :mod:`~steerlab.evaluate.rule_scorers`.)
- :class:`LLMJudgeScorer`: a judge model answers YES or NO to a rubric, through a
  :class:`JudgeBackend`: :class:`LocalJudge` (a Hugging Face causal LM) or
  :class:`OpenAIJudge` (any OpenAI-compatible ``/chat/completions`` endpoint, stdlib HTTP)
  (:mod:`~steerlab.evaluate.judges`).

:func:`make_scorer` builds the parameter-free scorers by name (see :data:`SCORERS`). Every name
above is importable from here.
"""

from __future__ import annotations

from steerlab.errors import SpecError
from steerlab.evaluate.judges import (
    DEFAULT_JUDGE_TEMPLATE,
    DEFAULT_RUBRIC,
    JudgeBackend,
    JudgeError,
    LLMJudgeScorer,
    LocalJudge,
    OpenAIJudge,
    parse_verdict,
)
from steerlab.evaluate.rule_scorers import (
    REFUSAL_PHRASES,
    ABAnswerScorer,
    AgreementScorer,
    RefusalScorer,
)
from steerlab.evaluate.scorer_base import BaseScorer, Scorer, normalize_text

__all__ = [
    "DEFAULT_JUDGE_TEMPLATE",
    "DEFAULT_RUBRIC",
    "REFUSAL_PHRASES",
    "SCORERS",
    "ABAnswerScorer",
    "AgreementScorer",
    "BaseScorer",
    "JudgeBackend",
    "JudgeError",
    "LLMJudgeScorer",
    "LocalJudge",
    "OpenAIJudge",
    "RefusalScorer",
    "Scorer",
    "make_scorer",
    "normalize_text",
    "parse_verdict",
]

#: Scorer classes by name.
SCORERS: dict[str, type[BaseScorer]] = {
    "refusal": RefusalScorer,
    "agreement": AgreementScorer,
    "ab": ABAnswerScorer,
    "judge": LLMJudgeScorer,
}
_NEEDS_SETTINGS = {"judge": "construct LLMJudgeScorer(LocalJudge(...) or OpenAIJudge(...))"}


def make_scorer(name: str) -> BaseScorer:
    """Build a parameter-free scorer by name: ``"refusal"``, ``"agreement"`` or ``"ab"``.

    ``"ab"`` gives an :class:`ABAnswerScorer` without a fixed letter: score it with
    ``score_with`` or ``score_many(..., matching=...)``.

    Raises:
        SpecError: for an unknown name (listing the known ones) or ``"judge"``, which needs
            a backend.
    """
    if name in _NEEDS_SETTINGS:
        raise SpecError(f"scorer {name!r} needs settings: {_NEEDS_SETTINGS[name]}")
    if name not in SCORERS:
        raise SpecError(f"unknown scorer {name!r}; choose one of {', '.join(sorted(SCORERS))}")
    return SCORERS[name]()
