"""The honesty suite's cosine metrics: where a statement and its answer are, and the cosine there.

Representation tuning claims to change how the model represents the *content*, so the cosine
to the target vector is read on the content, not on the chat template around it (the template
is the same for every statement: an average over the whole prompt barely depends on the
statement). Each statement is rendered as the evaluation prompt followed by its honest answer,
exactly as a training chat is rendered (:func:`steerlab.tuning.assistant_spans`), and read at:

* **the statement's own tokens** (``cosine_statement``): the tokens overlapping the statement's
  characters, found as its last occurrence before the answer;
* **the answer position(s) the tuning loss uses** (``cosine_answer``): the answer's tokens plus
  the end-of-turn token (the assistant-token mask of :func:`steerlab.tuning.tokenize_chat`) for
  ``"answer"``, the last token for ``"last"``, picked by the tuning loss's own
  :func:`steerlab.tuning.position_mask`.

A fast tokenizer maps characters to tokens with its offset mapping; a tokenizer without one
(slow tokenizers) counts the tokens of the text before each end of the span, which is exact
up to a token merged across a boundary.

At each layer the value of a statement is the mean over the chosen tokens of ``cos(h, v)``
(:func:`steerlab.tuning.mean_cosine`, the cosine the tuning loss computes); rows then average
over statements, so their bootstrap intervals resample statements.

Which layers (:func:`cosine_setup`): the suite's ``layers``, else the layers the evaluated
representation-tuning runs tuned (:func:`tuned_representations`, those the vector has), else
the vector's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import needs_special_tokens
from steerlab.data.evalsets import Statement
from steerlab.data.honesty import HonestyTemplates
from steerlab.errors import DataError
from steerlab.evaluate.model_specs import EvalModel
from steerlab.evaluate.suite_config import HonestySuite
from steerlab.progress import track
from steerlab.record import record_tokens
from steerlab.tuning import (
    IGNORE_INDEX,
    assistant_spans,
    mean_cosine,
    position_mask,
    read_run,
)
from steerlab.vector import SteeringVector

__all__ = [
    "CosineExample",
    "CosineSetup",
    "cosine_example",
    "cosine_setup",
    "span_cosines",
    "span_token_mask",
    "tuned_representations",
]


@dataclass(frozen=True)
class CosineSetup:
    """Where the cosine metrics read: layers and answer positions, each with the reason.

    Attributes:
        layers: the layers read (a row per layer, and their mean).
        layers_reason: why these layers.
        answer_positions: ``"answer"`` or ``"last"`` (see :func:`cosine_example`).
        positions_reason: why these positions.
    """

    layers: tuple[int, ...]
    layers_reason: str
    answer_positions: str
    positions_reason: str

    def describe(self) -> str:
        """One line: the layers and the positions, with their reasons."""
        layers = ", ".join(str(layer) for layer in self.layers)
        return (
            f"layers {layers} ({self.layers_reason}); cosine_statement over the statement's "
            f"tokens, cosine_answer over positions {self.answer_positions!r} "
            f"({self.positions_reason})"
        )


def tuned_representations(entries: Sequence[EvalModel]) -> list[dict[str, Any]]:
    """The representation settings of the tuning runs among the models' sources.

    Returns:
        One ``{"run": source, "layers": [...], "positions": ...}`` per run folder whose
        provenance has a representation section (sources that are no run folder, or a
        fine-tune without one, have none).
    """
    records = []
    for source in dict.fromkeys(e.source for e in entries if e.source):
        try:
            run = read_run(source)
        except DataError:
            # As for the split: loading the model reports the folder's real problem, if any.
            continue
        if run is None or not run.representation_layers:
            continue
        section = run.raw.get("representation") or {}
        positions = section.get("positions", "all") if isinstance(section, dict) else "all"
        records.append(
            {"run": source, "layers": list(run.representation_layers), "positions": positions}
        )
    return records


def _layers(
    suite: HonestySuite, vector: SteeringVector, runs: Sequence[dict[str, Any]]
) -> tuple[tuple[int, ...], str]:
    if suite.layers is not None:
        return tuple(suite.layers), "asked for"
    tuned = list(dict.fromkeys(layer for run in runs for layer in run["layers"]))
    usable = tuple(sorted(layer for layer in tuned if layer in vector.directions))
    names = ", ".join(str(run["run"]) for run in runs)
    if usable:
        return usable, f"the layers {names} tuned"
    if tuned:
        return tuple(vector.layers), f"the vector's: it has none of the layers {names} tuned"
    return tuple(vector.layers), "the vector's: no evaluated model was representation-tuned"


def _positions(suite: HonestySuite, runs: Sequence[dict[str, Any]]) -> tuple[str, str]:
    if suite.answer_positions != "auto":
        return suite.answer_positions, "asked for"
    used = sorted({str(run["positions"]) for run in runs})
    if used == ["last"]:
        return "last", "the tuned runs' loss read the last token"
    if used == ["answer"]:
        return "answer", "the tuned runs' loss read the answer tokens"
    if not used:
        return "answer", "the answer tokens; no evaluated model was representation-tuned"
    return "answer", (
        f"the tuned runs' loss read positions {', '.join(used)}; of those, the answer tokens "
        "are the ones that are no template"
    )


def cosine_setup(suite: HonestySuite, runs: Sequence[dict[str, Any]] = ()) -> CosineSetup | None:
    """The layers and answer positions of the cosine metrics; None when the suite has no vector.

    Args:
        suite: the suite (its ``vector``, ``layers`` and ``answer_positions``).
        runs: :func:`tuned_representations` records of the evaluated models.
    """
    if suite.vector is None:
        return None
    layers, layers_reason = _layers(suite, suite.vector, runs)
    positions, positions_reason = _positions(suite, runs)
    return CosineSetup(layers, layers_reason, positions, positions_reason)


@dataclass(frozen=True)
class CosineExample:
    """A statement's chat and the tokens each cosine metric reads.

    Attributes:
        text: the evaluation prompt and the honest answer, rendered as a training chat.
        statement: ``(n_tokens,)`` bool, the statement's tokens.
        answer: ``(n_tokens,)`` bool, the answer position(s).
    """

    text: str
    statement: torch.Tensor
    answer: torch.Tensor


def span_token_mask(
    tokenizer: PreTrainedTokenizerBase, text: str, spans: Sequence[tuple[int, int]]
) -> torch.Tensor:
    """The tokens of ``text`` that overlap the character ``spans``.

    ``text`` is tokenised as :func:`steerlab.record.record_tokens` tokenises it (special tokens
    added unless it starts with BOS), so the mask lines up with the recorded activations.

    Args:
        tokenizer: the tokenizer; with an offset mapping (fast tokenizers) a token belongs to
            a span when their characters overlap (as in :func:`steerlab.tuning.tokenize_chat`),
            without one the tokens of the text before each end of a span are counted.
        text: the text.
        spans: ``[(start, end)]`` character offsets, non-empty.

    Returns:
        ``(n_tokens,)`` bool.

    Raises:
        DataError: a span covers no token.
    """
    add_special = needs_special_tokens(tokenizer, text)
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=fast)
    n = len(encoded["input_ids"])
    mask = torch.zeros(n, dtype=torch.bool)
    for start, end in spans:
        span = torch.zeros(n, dtype=torch.bool)
        if fast:
            for index, (token_start, token_end) in enumerate(encoded["offset_mapping"]):
                span[index] = token_start < end and token_end > start and token_end > token_start
        else:
            first = _count_tokens(tokenizer, text[:start], add_special)
            stop = min(_count_tokens(tokenizer, text[:end], add_special), n)
            span[first : max(stop, first + 1)] = True
        if not bool(span.any()):
            raise DataError(f"no token covers characters {start}-{end} of {text[:40]!r}")
        mask |= span
    return mask


def _count_tokens(tokenizer: PreTrainedTokenizerBase, text: str, add_special: bool) -> int:
    return len(tokenizer(text, add_special_tokens=add_special)["input_ids"])


def cosine_example(
    tokenizer: PreTrainedTokenizerBase,
    templates: HonestyTemplates,
    statement: Statement,
    answer_positions: str,
) -> CosineExample:
    """The chat of one statement, with its statement tokens and answer position(s).

    The chat is the evaluation prompt (``templates.messages(statement, None)``) followed by
    the honest answer (``templates.answer(label)``), rendered as
    :func:`steerlab.tuning.tokenize_chat` renders a training chat.

    Args:
        tokenizer: the model's tokenizer.
        templates: the prompt wording.
        statement: the statement.
        answer_positions: ``"answer"`` (the answer's tokens and end-of-turn token: the
            assistant tokens a training chat's labels keep) or ``"last"`` (the last token).

    Raises:
        DataError: the chat template shows no answer, or not the statement verbatim.
    """
    messages = [
        *templates.messages(statement.text, None),
        {"role": "assistant", "content": templates.answer(statement.label)},
    ]
    text, spans = assistant_spans(tokenizer, messages)
    if not spans:
        raise DataError("the chat template shows no assistant answer; cannot find the answer")
    answer_start, answer_end = spans[-1]
    content = statement.text.strip()
    start = text.rfind(content, 0, answer_start)
    if start < 0:
        raise DataError(f"the chat template does not show the statement verbatim: {content!r}")
    statement_mask = span_token_mask(tokenizer, text, [(start, start + len(content))])
    answer_tokens = span_token_mask(tokenizer, text, [(answer_start, answer_end)])
    # The tuning loss's own choice of positions, on labels laid out as a training chat's.
    labels = torch.where(answer_tokens, 0, IGNORE_INDEX).unsqueeze(0)
    attention = torch.ones_like(labels)
    answer_mask = position_mask(attention, labels, answer_positions)[0]
    return CosineExample(text, statement_mask, answer_mask)


def span_cosines(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[CosineExample],
    vector: SteeringVector,
    layers: Sequence[int],
    *,
    batch_size: int,
    progress: bool = False,
    description: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """Per statement and layer, the mean cosine to the vector over its statement / answer tokens.

    Args:
        model: the model.
        tokenizer: its tokenizer.
        examples: :func:`cosine_example` per statement.
        vector: the target vector (holds every layer of ``layers``).
        layers: the layers read.
        batch_size: examples per forward pass.
        progress: show a progress bar.
        description: its label.

    The caller steers the model around this call (steering hooks installed first run before
    the recording hooks, so the steered activations are read).

    Returns:
        ``(statement, answer)``, each ``(n_examples, n_layers)`` float64.
    """
    targets = {layer: vector.directions[layer].float() for layer in layers}
    statement = np.empty((len(examples), len(layers)))
    answer = np.empty((len(examples), len(layers)))
    starts = list(range(0, len(examples), batch_size))
    for first in track(starts, description, total=len(starts), enabled=progress):
        chunk = examples[first : first + batch_size]
        # Per chunk: every token's activation is kept only for the chunk being read.
        recorded = record_tokens(
            model, tokenizer, [e.text for e in chunk], list(layers), batch_size=batch_size
        )
        for i, example in enumerate(chunk):
            hidden = {layer: recorded[layer][i].unsqueeze(0) for layer in layers}
            n = hidden[layers[0]].shape[1]
            if n != example.statement.shape[0]:
                raise RuntimeError(
                    f"recorded {n} tokens where the mask has {example.statement.shape[0]}"
                )
            for out, mask in ((statement, example.statement), (answer, example.answer)):
                values = mean_cosine(hidden, targets, mask.unsqueeze(0))
                out[first + i] = [values[layer] for layer in layers]
    return statement, answer
