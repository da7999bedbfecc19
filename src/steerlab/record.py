"""Recording residual-stream activations at chosen layers and token positions.

One forward pass per batch records every requested layer; hooks keep only the reduced
activations (one row per example, or the real tokens for ``all``), never full hidden-state
stacks, and the pass stops right after the deepest requested layer, skipping the rest of the
network and the LM head.

Upstream assumptions (see :mod:`steerlab.upstream`): ``model(input_ids=, attention_mask=,
use_cache=False)`` and the block output format of :func:`steerlab.hooks.hidden_of`; tested in
``tests/test_upstream.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import needs_special_tokens
from steerlab.errors import DataError, SpecError
from steerlab.hooks import StopForward, hooked
from steerlab.layers import LayerSelection, find_layers
from steerlab.models import model_device
from steerlab.progress import track

ReadPosition = Literal["last", "mean", "all"]
READ_POSITIONS: tuple[str, ...] = ("last", "mean", "all")


@dataclass(frozen=True)
class TextExample:
    """A text to run through the model, with an optional marked span.

    Attributes:
        text: the full input text (prompt and completion, chat template applied).
        span_start: character offset where the marked span (e.g. the answer) begins;
            ``position="mean"`` averages the tokens from there to the end.
    """

    text: str
    span_start: int = 0


@dataclass(frozen=True)
class _Batch:
    input_ids: torch.Tensor  # (batch, seq), right padded
    attention_mask: torch.Tensor  # (batch, seq)
    span_mask: torch.Tensor  # (batch, seq) 1 on the marked span's tokens
    lengths: torch.Tensor  # (batch,) real tokens per row


def _span_token_mask(
    tokenizer: PreTrainedTokenizerBase, example: TextExample, ids: list[int], offsets: list | None
) -> list[int]:
    if example.span_start <= 0:
        return [1] * len(ids)
    if offsets is not None:
        mask = [1 if end > example.span_start else 0 for (_start, end) in offsets]
    else:
        prefix = tokenizer(
            example.text[: example.span_start],
            add_special_tokens=needs_special_tokens(tokenizer, example.text),
        )["input_ids"]
        mask = [0] * min(len(prefix), len(ids)) + [1] * max(0, len(ids) - len(prefix))
    if not any(mask):
        mask[-1] = 1  # an empty span reads the last token rather than nothing
    return mask


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[TextExample], max_length: int | None
) -> list[tuple[list[int], list[int]]]:
    """Token ids and span masks for each example (no padding)."""
    out = []
    fast = bool(getattr(tokenizer, "is_fast", False))
    for example in examples:
        encoded = tokenizer(
            example.text,
            add_special_tokens=needs_special_tokens(tokenizer, example.text),
            return_offsets_mapping=fast,
            truncation=max_length is not None,
            max_length=max_length,
        )
        ids = list(encoded["input_ids"])
        if not ids:
            raise DataError(f"example {example.text[:40]!r} tokenises to nothing")
        offsets = list(encoded["offset_mapping"]) if fast else None
        out.append((ids, _span_token_mask(tokenizer, example, ids, offsets)))
    return out


def collate_tokens(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> _Batch:
    """Right-pad tokenised examples into one batch, exactly as :func:`record` batches them.

    Args:
        rows: ``(token ids, span mask)`` per example, as :func:`tokenize_examples` returns
            them (no padding; the two lists of a row have the same length).
        pad_id: the id written into padded positions.

    Returns:
        A batch with ``input_ids`` (batch, seq) long, right-padded with ``pad_id``;
        ``attention_mask`` (batch, seq) long, 1 on real tokens; ``span_mask`` (batch, seq)
        float32, the rows' span masks; ``lengths`` (batch,) real tokens per row.
        ``seq`` is the longest row's length.
    """
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    span = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, (row_ids, row_span) in enumerate(rows):
        n = len(row_ids)
        ids[i, :n] = torch.tensor(row_ids)
        attention[i, :n] = 1
        span[i, :n] = torch.tensor(row_span, dtype=torch.float32)
    return _Batch(ids, attention, span, attention.sum(dim=1))


_collate = collate_tokens  # the name this module's callers use


Reducer = Callable[[torch.Tensor, _Batch], list[torch.Tensor]]


def _reduce_last(hidden: torch.Tensor, batch: _Batch) -> list[torch.Tensor]:
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    picked = hidden[rows, (batch.lengths - 1).to(hidden.device)]
    return list(picked.float().cpu())


def _reduce_mean(hidden: torch.Tensor, batch: _Batch) -> list[torch.Tensor]:
    weights = batch.span_mask.to(device=hidden.device, dtype=torch.float32).unsqueeze(-1)
    summed = (hidden.float() * weights).sum(dim=1)
    return list((summed / weights.sum(dim=1)).cpu())


def _reduce_all(hidden: torch.Tensor, batch: _Batch) -> list[torch.Tensor]:
    return [hidden[i, : int(n)].float().cpu() for i, n in enumerate(batch.lengths)]


_REDUCERS: dict[str, Reducer] = {"last": _reduce_last, "mean": _reduce_mean, "all": _reduce_all}


def _record(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample | str],
    layers: LayerSelection,
    position: str,
    batch_size: int,
    layers_path: str | None,
    progress: bool,
    max_length: int | None,
) -> dict[int, list[torch.Tensor]]:
    if position not in READ_POSITIONS:
        raise SpecError(f"position {position!r} is not one of {', '.join(READ_POSITIONS)}")
    if batch_size < 1:
        raise SpecError(f"batch size {batch_size} must be at least 1")
    items = [TextExample(e) if isinstance(e, str) else e for e in examples]
    if not items:
        raise DataError("no examples to record")
    layer_map = find_layers(model, layers_path)
    chosen = layer_map.resolve(layers)
    deepest = max(chosen)
    reducer = _REDUCERS[position]
    tokenized = tokenize_examples(tokenizer, items, max_length)
    # Sorting by length keeps padding (wasted compute) small; results go back in order.
    order = sorted(range(len(items)), key=lambda i: len(tokenized[i][0]))
    results: dict[int, list[torch.Tensor | None]] = {layer: [None] * len(items) for layer in chosen}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = model_device(model)
    starts = list(range(0, len(order), batch_size))
    for start in track(starts, "recording activations", total=len(starts), enabled=progress):
        index = order[start : start + batch_size]
        batch = _collate([tokenized[i] for i in index], pad_id)

        def make_hook(layer: int, batch: _Batch = batch, index: list[int] = index):
            def hook(hidden: torch.Tensor) -> None:
                for i, row in zip(index, reducer(hidden, batch), strict=True):
                    results[layer][i] = row
                if layer == deepest:
                    raise StopForward

            return hook

        hooks = [(layer_map.blocks[layer], make_hook(layer)) for layer in chosen]
        with hooked(outputs=hooks), torch.inference_mode(), contextlib.suppress(StopForward):
            model(
                input_ids=batch.input_ids.to(device),
                attention_mask=batch.attention_mask.to(device),
                use_cache=False,
            )
    return {layer: [r for r in rows if r is not None] for layer, rows in results.items()}


def record(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample | str],
    layers: LayerSelection = "all",
    position: Literal["last", "mean"] = "last",
    *,
    batch_size: int = 16,
    layers_path: str | None = None,
    progress: bool = False,
    max_length: int | None = None,
) -> dict[int, torch.Tensor]:
    """Record one activation per example at each layer.

    Args:
        model: a transformers causal LM.
        tokenizer: its tokenizer.
        examples: texts, or :class:`TextExample` with a marked span.
        layers: layer selection (see :func:`steerlab.layers.parse_layers`).
        position: ``last`` (the last token) or ``mean`` (mean over the marked span).
        batch_size: examples per forward pass.
        layers_path: override for the decoder block list.
        progress: show a progress bar.
        max_length: truncate longer examples to this many tokens.

    Returns:
        ``{layer: tensor of shape (n_examples, hidden_size)}``, float32 on the CPU.
    """
    if position == "all":
        raise SpecError("position 'all' returns per-token activations: use record_tokens()")
    rows = _record(
        model, tokenizer, examples, layers, position, batch_size, layers_path, progress, max_length
    )
    return {layer: torch.stack(values) for layer, values in rows.items()}


def record_tokens(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample | str],
    layers: LayerSelection = "all",
    *,
    batch_size: int = 16,
    layers_path: str | None = None,
    progress: bool = False,
    max_length: int | None = None,
) -> dict[int, list[torch.Tensor]]:
    """Record every token's activation.

    Returns:
        ``{layer: [tensor of shape (n_tokens_i, hidden_size) for each example]}``.
    """
    return _record(
        model, tokenizer, examples, layers, "all", batch_size, layers_path, progress, max_length
    )


NORM_TEXTS: tuple[str, ...] = (
    "The water cycle moves water from the oceans to the clouds and back again as rain.",
    "To bake bread you need flour, water, salt and yeast, and a warm place to let it rise.",
    "Public libraries lend books and films to anyone with a library card.",
    "The train to the coast leaves at nine and arrives a little after noon.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "She asked whether the meeting could be moved to Thursday afternoon.",
    "A good night's sleep helps memory, mood and concentration the next day.",
    "The museum's new exhibition shows maps drawn by sailors four hundred years ago.",
    "Prime numbers have exactly two divisors: one and the number itself.",
    "He fixed the bicycle's flat tyre with a patch and a small pump.",
    "Tell me about your day.",
    "What is the capital of France?",
)
"""A small built-in general text set: where a vector does not record its layers' typical
activation norms (an imported vector), :func:`measure_activation_norms` reads them here."""


def measure_activation_norms(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    layers: LayerSelection = "all",
    texts: Sequence[str] = NORM_TEXTS,
    *,
    layers_path: str | None = None,
) -> dict[int, float]:
    """Each layer's typical activation norm: the mean L2 norm of the last token's activation
    over ``texts`` (what :func:`steerlab.extract` records for the pairs it reads).

    Returns:
        ``{layer: norm}``.
    """
    activations = record(model, tokenizer, list(texts), layers, "last", layers_path=layers_path)
    return {layer: float(acts.norm(dim=-1).mean()) for layer, acts in activations.items()}
