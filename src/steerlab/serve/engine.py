"""Dynamic batching: concurrent requests decoded together, one steering coefficient per row.

One engine thread owns the model. Requests wait in a queue as *rows* (one per completion a
request asks for); when the engine is free it takes the oldest row and every waiting row that
can share its forward passes (same steering layers, operators, positions and scales; up to
``max_batch_size``), prefills them together (left padding) and decodes them step by step
with a KV cache. Each row carries its own coefficients: for each steering entry and vector of
the batch, one :func:`steerlab.steer` context per forward pass gets the rows' coefficients,
and 0 for the rows that do not use that vector (``add`` and ``ablate`` at 0 change nothing;
``clamp`` at 0 would, so rows clamp together only with the same vector). A row that
finishes (end of text, a stop string, ``max_tokens``) or whose client went away leaves the
batch at once (its KV cache rows are dropped); the others go on. Rows that arrive while a
batch is decoding form a batch of their own: the engine steps its batches in turn (at most
``max_batches``), so a new request's first tokens do not wait for a long one to finish.

Each row samples with its own generator seeded from its request, so a sampled answer is the
same whichever requests it shared a batch with; greedy rows (temperature 0) take the argmax,
as ``model.generate`` does, so a batch gives the text :func:`steerlab.generate` gives.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.errors import SteeringStrengthWarning
from steerlab.models import model_device
from steerlab.serve.config import ServeConfig
from steerlab.serve.protocol import Sampling
from steerlab.steer import steer
from steerlab.upstream import cache_keyword, returned_cache
from steerlab.vector import SteeringVector


@dataclass(frozen=True)
class RowSteering:
    """One steering entry of a row, resolved against the catalog.

    Attributes:
        vector: the vector's catalog name.
        coefficient: the row's coefficient.
        layers: the steered layers.
        operator: ``add``, ``ablate`` or ``clamp``.
        positions: ``all``, ``prompt`` or ``generated``.
        scale: ``norm``, ``unit`` or ``vector``.
    """

    vector: str
    coefficient: float
    layers: tuple[int, ...]
    operator: str
    positions: str
    scale: str

    def batch_key(self) -> tuple[Any, ...]:
        """What rows must share to be steered in one forward pass (not the coefficient)."""
        clamped = self.vector if self.operator == "clamp" else None
        return (self.layers, self.operator, self.positions, self.scale, clamped)

    def describe(self) -> dict[str, Any]:
        """The entry as echoed back in responses."""
        return {
            "vector": self.vector,
            "coefficient": self.coefficient,
            "layers": list(self.layers),
            "operator": self.operator,
            "positions": self.positions,
            "scale": self.scale,
        }


Event = tuple[Any, ...]
"""What a ticket receives: ``("delta", index, text)``, ``("finish", index, reason, token ids)``
or ``("error", message)``."""


class Ticket:
    """A request's handle: its rows' events arrive through ``emit`` (from the engine thread),
    and ``cancel`` (the client went away) frees its rows at the next decoding step."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop decoding this request's rows (they leave their batch at the next step)."""
        self.cancelled.set()


@dataclass
class Row:
    """One completion to decode.

    Attributes:
        prompt_ids: the prompt's token ids (chat template applied).
        steering: the row's steering entries, in application order.
        sampling: how it picks tokens.
        index: the choice index within its request.
        ticket: where its events go.
    """

    prompt_ids: list[int]
    steering: tuple[RowSteering, ...]
    sampling: Sampling
    index: int
    ticket: Ticket
    tokens: list[int] = field(default_factory=list)
    sent: str = ""  # the text already emitted
    arrived: float = field(default_factory=time.monotonic)

    def batch_key(self) -> tuple[Any, ...]:
        """Rows with equal keys can be decoded in one batch."""
        return tuple(entry.batch_key() for entry in self.steering)


@dataclass
class _Batch:
    """Rows decoded together: their generators, the next step's inputs and their KV cache."""

    rows: list[Row]
    generators: list[torch.Generator]
    step_ids: torch.Tensor  # (rows, tokens of this step): the prompts, then one token each
    mask: torch.Tensor  # (rows, tokens so far) attention mask, left padding
    step_positions: torch.Tensor  # (rows, tokens of this step) position ids
    cache: Any = None


class QueueFull(Exception):
    """The engine's queue cannot take the rows of another request (answered 429)."""


class EngineStopped(Exception):
    """The engine is shutting down or its thread has died (answered 503)."""


def stop_hold(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string."""
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:size]):
                hold = size
                break
    return hold


def next_token(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    """The row's next token from its last logits (shape ``(vocab,)``): argmax when greedy,
    else a draw from the temperature-scaled, nucleus-filtered distribution."""
    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.double() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        before = torch.cumsum(ordered, dim=-1) - ordered  # mass of the tokens ranked above
        ordered = torch.where(before < sampling.top_p, ordered, torch.zeros_like(ordered))
        probs = torch.zeros_like(probs).scatter(0, order, ordered)
    return int(torch.multinomial(probs, 1, generator=generator))


class BatchEngine:
    """The decoding thread and its queue.

    Args:
        model: the served causal LM (used by the engine thread only).
        tokenizer: its tokenizer.
        vectors: ``{name: vector}`` of the compatible vectors.
        config: the server's limits.
        layers_path: dotted path of the decoder block list, if it cannot be found.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        vectors: dict[str, SteeringVector],
        config: ServeConfig,
        *,
        layers_path: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.vectors = vectors
        self.config = config
        self.layers_path = layers_path
        eos = getattr(model, "generation_config", None)
        eos_ids = getattr(eos, "eos_token_id", None)
        if eos_ids is None:
            eos_ids = tokenizer.eos_token_id
        self.eos_ids = {eos_ids} if isinstance(eos_ids, int) else set(eos_ids or ())
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else next(iter(self.eos_ids), 0))
        self.cache_keyword = cache_keyword(model)
        # torch's thread count is per thread under OpenMP: the engine thread applies the
        # count of the thread that made it (the CLI's --threads), and any later change of
        # this attribute, before each batch.
        self.threads = torch.get_num_threads()
        self._waiting: deque[Row] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self.stats = {"batches": 0, "rows": 0, "steps": 0, "largest_batch": 0, "cancelled": 0}
        self._thread = threading.Thread(target=self._run, name="steerlab-engine", daemon=True)
        self._thread.start()

    # -- the queue (any thread) ----------------------------------------------------------
    def submit(self, rows: Sequence[Row]) -> None:
        """Queue a request's rows.

        Raises:
            QueueFull: the queue would pass ``max_queue`` rows.
        """
        with self._condition:
            if self._closed or not self._thread.is_alive():
                raise EngineStopped("the generation engine has stopped: restart the server")
            if len(self._waiting) + len(rows) > self.config.max_queue:
                raise QueueFull(
                    f"{len(self._waiting)} rows are waiting (the limit is "
                    f"{self.config.max_queue}): retry later"
                )
            self._waiting.extend(rows)
            self._condition.notify()

    def alive(self) -> bool:
        """Whether the engine thread is running (it survives failing batches; this is for
        the unforeseen)."""
        return self._thread.is_alive() and not self._closed

    def waiting(self) -> int:
        """Rows waiting for a batch."""
        with self._condition:
            return len(self._waiting)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after the batch in progress; waiting rows get an error."""
        with self._condition:
            self._closed = True
            left = list(self._waiting)
            self._waiting.clear()
            self._condition.notify()
        for row in left:
            row.ticket.emit(("error", "the server is shutting down"))
        self._thread.join(timeout)

    def _take_batch(self, idle: bool) -> list[Row] | None:
        """The oldest waiting row and those that can share its batch; ``[]`` if none wait,
        None once closed. An idle engine waits for rows, then for the batching window."""
        with self._condition:
            while idle and not self._waiting and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            if not self._waiting:
                return []
            first = self._waiting[0]
            window = self.config.batch_window_ms / 1000
            while (
                idle
                and not self._closed
                and len(self._waiting) < self.config.max_batch_size
                and time.monotonic() < first.arrived + window
            ):
                self._condition.wait(first.arrived + window - time.monotonic())
            key = first.batch_key()
            batch: list[Row] = []
            kept: deque[Row] = deque()
            for row in self._waiting:
                if row.ticket.cancelled.is_set():
                    self.stats["cancelled"] += 1
                    continue
                if row.batch_key() == key and len(batch) < self.config.max_batch_size:
                    batch.append(row)
                else:
                    kept.append(row)
            self._waiting = kept
            return batch

    # -- the engine thread ---------------------------------------------------------------
    def _run(self) -> None:
        active: list[_Batch] = []
        while True:
            rows = (
                self._take_batch(idle=not active) if len(active) < self.config.max_batches else []
            )
            if rows is None:  # closed: the batches in progress end with an error
                for batch in active:
                    for row in batch.rows:
                        row.ticket.emit(("error", "the server is shutting down"))
                return
            if rows:
                try:
                    active.append(self._start(rows))
                except Exception as exc:  # e.g. a seed torch refuses: these rows fail alone
                    self._fail(rows, exc)
            # One step of each batch in turn: a new batch's first tokens do not wait for
            # an older batch to finish.
            for batch in list(active):
                try:
                    alive = self._step(batch)
                except Exception as exc:  # one batch's failure must not stop the server
                    self._fail(batch.rows, exc)
                    alive = False
                if not alive:
                    active.remove(batch)

    @staticmethod
    def _fail(rows: Sequence[Row], exc: Exception) -> None:
        message = f"generation failed: {type(exc).__name__}: {exc}"
        for row in rows:
            row.ticket.emit(("error", message))

    def _steering(self, rows: Sequence[Row]) -> ExitStack:
        """One steer context per (entry, vector) of the batch, with per-row coefficients.

        The strength warning is for people at a terminal; a server's clients chose their
        coefficients, and a warning per decoding step would flood its log.
        """
        stack = ExitStack()
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", SteeringStrengthWarning)
        for position, entry in enumerate(rows[0].steering):
            names = dict.fromkeys(row.steering[position].vector for row in rows)
            for name in names:
                coefficients = [
                    row.steering[position].coefficient
                    if row.steering[position].vector == name
                    else 0.0
                    for row in rows
                ]
                stack.enter_context(
                    steer(
                        self.model,
                        self.vectors[name],
                        coefficients,
                        layers=list(entry.layers),
                        operator=entry.operator,  # type: ignore[arg-type]
                        positions=entry.positions,  # type: ignore[arg-type]
                        scale=entry.scale,  # type: ignore[arg-type]
                        layers_path=self.layers_path,
                    )
                )
        return stack

    def _start(self, rows: list[Row]) -> _Batch:
        """A batch of ``rows``, left-padded, ready for its prompt pass."""
        width = max(len(row.prompt_ids) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids)
            mask[i, width - len(row.prompt_ids) :] = 1
        # Position ids as generate makes them: counted over real tokens, pads get 1.
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        generators = [torch.Generator().manual_seed(row.sampling.seed + row.index) for row in rows]
        self.stats["batches"] += 1
        self.stats["rows"] += len(rows)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(rows))
        return _Batch(rows, generators, ids, mask, positions)

    def _step(self, batch: _Batch) -> bool:
        """One forward pass of ``batch`` and a token for each row; False once it is empty."""
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        device = model_device(self.model)
        inputs = {
            "input_ids": batch.step_ids.to(device),
            "attention_mask": batch.mask.to(device),
            "position_ids": batch.step_positions.to(device),
            "use_cache": True,
        }
        if batch.cache is not None:
            inputs[self.cache_keyword] = batch.cache
        with self._steering(batch.rows), torch.inference_mode():
            output = self.model(**inputs)
        self.stats["steps"] += 1
        batch.cache = returned_cache(output)
        if batch.cache is None:
            raise RuntimeError("the model returned no KV cache")
        logits = output.logits[:, -1, :].float().cpu()
        keep: list[int] = []
        for i, row in enumerate(batch.rows):
            if row.ticket.cancelled.is_set():
                self.stats["cancelled"] += 1
                continue
            token = next_token(logits[i], row.sampling, batch.generators[i])
            if not self._advance(row, token):
                keep.append(i)
        if not keep:
            return False
        if len(keep) < len(batch.rows):
            batch.cache.batch_select_indices(torch.tensor(keep, device=device))
            batch.mask, batch.step_positions = batch.mask[keep], batch.step_positions[keep]
            batch.rows = [batch.rows[i] for i in keep]
            batch.generators = [batch.generators[i] for i in keep]
        batch.step_ids = torch.tensor([[row.tokens[-1]] for row in batch.rows], dtype=torch.long)
        ones = torch.ones((len(batch.rows), 1), dtype=torch.long)
        batch.mask = torch.cat([batch.mask, ones], dim=-1)
        batch.step_positions = batch.step_positions[:, -1:] + 1
        return True

    def _advance(self, row: Row, token: int) -> bool:
        """Add ``token`` to ``row``, emit the text it makes safe to show; True if finished."""
        stops = row.sampling.stop
        if token in self.eos_ids:
            self._finish(row, self._text(row), "stop")
            return True
        row.tokens.append(token)
        text = self._text(row)
        if stops:
            found = [text.find(stop) for stop in stops if stop in text]
            if found:
                self._finish(row, text[: min(found)], "stop")
                return True
        if len(row.tokens) >= row.sampling.max_tokens:
            self._finish(row, text, "length")
            return True
        if text.endswith("\ufffd"):
            return False  # an incomplete UTF-8 character: wait for its other bytes
        shown = text[: len(text) - stop_hold(text, stops)] if stops else text
        if shown.startswith(row.sent) and len(shown) > len(row.sent):
            row.ticket.emit(("delta", row.index, shown[len(row.sent) :]))
            row.sent = shown
        return False

    def _text(self, row: Row) -> str:
        return str(self.tokenizer.decode(row.tokens, skip_special_tokens=True))

    def _finish(self, row: Row, text: str, reason: str) -> None:
        text = text.rstrip("\ufffd")
        if text.startswith(row.sent) and len(text) > len(row.sent):
            row.ticket.emit(("delta", row.index, text[len(row.sent) :]))
            row.sent = text
        row.ticket.emit(("finish", row.index, reason, list(row.tokens)))


_ids = itertools.count()


def request_id(prefix: str) -> str:
    """A fresh response id (``chatcmpl-...``)."""
    return f"{prefix}-{int(time.time() * 1000):x}{next(_ids):04x}"
