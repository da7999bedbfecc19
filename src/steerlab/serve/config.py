"""The server's limits and switches (:class:`ServeConfig`), validated where they are built."""

from __future__ import annotations

from dataclasses import dataclass

from steerlab.validation import check_int, check_number

API_KEY_ENV = "STEERLAB_API_KEY"


@dataclass(frozen=True)
class ServeConfig:
    """Limits of ``steerlab serve``: what one request may ask and how much may wait.

    Attributes:
        max_tokens: the most tokens one request may generate (``max_tokens`` above it is a 400;
            a request without ``max_tokens`` gets ``default_max_tokens``).
        default_max_tokens: tokens generated when a request does not say.
        max_prompt_tokens: the longest prompt, in tokens, after the chat template (400 above).
        max_batch_size: the most rows decoded together in one forward pass.
        max_batches: the most batches in progress at once (their steps take turns), so
            that requests arriving during a long generation start at once.
        max_queue: the most rows waiting for a batch; a request that would pass it is answered
            429 at once rather than left to hang.
        batch_window_ms: how long the first waiting request waits for others to batch with,
            when the engine is idle.
        max_body_bytes: the largest request body (413 above).
        api_key: when set, every ``/v1`` request needs ``Authorization: Bearer <api_key>``.
    """

    max_tokens: int = 1024
    default_max_tokens: int = 128
    max_prompt_tokens: int = 4096
    max_batch_size: int = 16
    max_batches: int = 4
    max_queue: int = 64
    batch_window_ms: float = 20.0
    max_body_bytes: int = 1_000_000
    api_key: str | None = None

    def __post_init__(self) -> None:
        check_int(self.max_tokens, "max_tokens", minimum=1)
        check_int(self.default_max_tokens, "default_max_tokens", minimum=1, maximum=self.max_tokens)
        check_int(self.max_prompt_tokens, "max_prompt_tokens", minimum=1)
        check_int(self.max_batch_size, "max_batch_size", minimum=1)
        check_int(self.max_batches, "max_batches", minimum=1)
        check_int(self.max_queue, "max_queue", minimum=1)
        check_number(self.batch_window_ms, "batch_window_ms", low=0.0)
        check_int(self.max_body_bytes, "max_body_bytes", minimum=1024)
