"""What a response scorer is: one (prompt, response) pair to +1 (shows the behaviour) or -1.

Behaviour expectation ``B = P(aligned) - P(misaligned)`` can be estimated by sampling ``n``
responses per prompt and averaging a score of ``+1`` or ``-1``. A scorer is anything with a
``name`` and a ``score(prompt, response)`` method (:class:`Scorer`); :class:`BaseScorer` adds a
default ``score_many``. :func:`normalize_text` is the text normalisation the rule scorers share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from steerlab.errors import DataError

__all__ = ["APOSTROPHES", "BaseScorer", "Scorer", "check_lengths", "normalize_text"]

# Apostrophe look-alikes that models emit for "can't", "I'm"...: ’ ‘ ʼ ′ ` ´
APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u2032`\u00b4"})
"""Translation table mapping apostrophe look-alikes to ``'``."""


def normalize_text(text: str) -> str:
    """Lower-case ``text``, map curly and other apostrophe variants to ``'``, squash spaces."""
    return " ".join(text.translate(APOSTROPHES).lower().split())


def check_lengths(prompts: Sequence[str], responses: Sequence[str]) -> None:
    """One response per prompt, or a one-line DataError."""
    if len(prompts) != len(responses):
        raise DataError(f"{len(prompts)} prompts but {len(responses)} responses; need one each")


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores a response +1 (shows the behaviour) or -1 (does not)."""

    name: str

    def score(self, prompt: str, response: str) -> int:
        """Score one response to ``prompt``: +1 or -1."""
        ...

    def score_many(self, prompts: Sequence[str], responses: Sequence[str]) -> list[int]:
        """Score ``responses[i]`` to ``prompts[i]`` for every ``i``."""
        ...


class BaseScorer:
    """Base class for scorers: subclasses implement :meth:`score`.

    Attributes:
        name: short identifier, recorded in results.
    """

    name: str = "base"

    def score(self, prompt: str, response: str) -> int:
        """Score one response to ``prompt``: +1 or -1."""
        raise NotImplementedError

    def score_many(self, prompts: Sequence[str], responses: Sequence[str]) -> list[int]:
        """Score ``responses[i]`` to ``prompts[i]`` for every ``i``.

        Raises:
            DataError: if the two sequences differ in length.
        """
        check_lengths(prompts, responses)
        return [self.score(p, r) for p, r in zip(prompts, responses, strict=True)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
