"""Deprecated import path: use :mod:`steerlab.evaluate.logprobs`.

The log-probability primitives were renamed for what they are; this module re-exports them.
"""

from steerlab.evaluate.logprobs import (
    continuation_logprobs,
    first_token_id,
    last_logits,
    letter_token_id,
    next_token_logprobs,
    steering_context,
    token_nll,
)

__all__ = [
    "continuation_logprobs",
    "first_token_id",
    "last_logits",
    "letter_token_id",
    "next_token_logprobs",
    "steering_context",
    "token_nll",
]
