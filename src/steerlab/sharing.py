"""Rows that differ only in their steering coefficient share the work no coefficient changes.

Steering a set of layers changes nothing below the first of them. A batch of rows that hold
the same input at K coefficients can therefore run the bottom blocks once per input and be
fanned out to its K rows from the first steered block on: with one steered layer at 15 of
30 and K = 9, an input costs 15 + 9 x 15 block passes instead of 9 x 30.

* :func:`plan_chunks` groups rows by input into forward passes (:class:`RowChunk`);
* :func:`shared_start` says how many bottom blocks a steering spec leaves alone;
* :func:`fan_out` is the context that repeats each row from that block on
  (:func:`steerlab.hooks.fanned_out`), for likelihood passes without a cache;
* :func:`shared_prompt_cache` prefills the prompts of a generation once, for
  ``positions="generated"`` (whose steering starts at the prompt's last token), and gives
  each coefficient row a copy of the KV cache.

Results equal the unshared computation to float rounding, on every tiny architecture
(tests/test_fanned_out.py, tests/test_sharing.py, tests/evaluate/test_logprobs_sharing.py).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from steerlab.hooks import fanned_out
from steerlab.layers import find_layers
from steerlab.steer import SteerSpec, plan_layers
from steerlab.upstream import cache_keyword, returned_cache
from steerlab.vector import SteeringVector


def shared_blocks(
    model: nn.Module, vector: SteeringVector, spec: SteerSpec, *, layers_path: str | None = None
) -> int:
    """How many decoder blocks at the bottom see the same hidden states whatever the coefficient.

    Steering a set of layers changes nothing below the first of them: blocks
    ``0..first-1`` compute the same thing for every coefficient, so rows that differ only in
    their coefficient can share them (:func:`steerlab.hooks.fanned_out`). ``sites="everywhere"``
    steers the embeddings: nothing is shared (0).

    Raises:
        LayerError / VectorError / SpecError: as :func:`plan_layers`.
    """
    if spec.sites == "everywhere":
        return 0
    plan = plan_layers(vector, spec, len(find_layers(model, layers_path).blocks))
    return min((layer for layer, _, _ in plan), default=0)


@dataclass(frozen=True)
class RowChunk:
    """One forward pass of a likelihood function.

    Attributes:
        sources: one row index per distinct input run through the model (``U`` rows).
        rows: the row indices whose results the pass gives, in output order: each source's
            ``repeats`` rows one after another (``U * repeats`` rows).
        repeats: rows per source (1: nothing is shared).
    """

    sources: tuple[int, ...]
    rows: tuple[int, ...]
    repeats: int


def plan_chunks(keys: Sequence[Hashable], batch_size: int, share: bool) -> list[RowChunk]:
    """Cut rows into forward passes of at most ``batch_size`` output rows.

    Without ``share``, consecutive rows make a pass, one input per row. With ``share``, rows
    with equal keys (the same input text) are grouped: each group becomes one source fanned
    out to its rows (groups larger than ``batch_size`` are cut into pieces), and pieces of the
    same size are packed into passes of ``batch_size // size`` sources. The plan depends only
    on the keys, so a unit of work always runs in the same batches (resumed runs match).

    Args:
        keys: one hashable key per row; equal keys mean equal model inputs.
        batch_size: output rows per pass (what the steered blocks and the logits hold).
        share: whether rows with equal keys may share their unsteered blocks.
    """
    if not share:
        passes = (
            tuple(range(s, min(len(keys), s + batch_size))) for s in range(0, len(keys), batch_size)
        )
        return [RowChunk(rows, rows, 1) for rows in passes]
    groups: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    by_size: dict[int, list[list[int]]] = {}
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            piece = members[start : start + batch_size]
            by_size.setdefault(len(piece), []).append(piece)
    plan = []
    for size, pieces in by_size.items():
        per_pass = max(1, batch_size // size)
        for start in range(0, len(pieces), per_pass):
            part = pieces[start : start + per_pass]
            plan.append(
                RowChunk(tuple(p[0] for p in part), tuple(r for p in part for r in p), size)
            )
    return plan


def shared_start(model: nn.Module, vector: SteeringVector | None, spec: SteerSpec | None) -> int:
    """Blocks that rows differing only in their coefficient can share (0: none)."""
    if vector is None:
        return 0
    return shared_blocks(model, vector, spec or SteerSpec())


def fan_out(
    model: nn.Module, start: int, repeats: int, *, layers_path: str | None = None
) -> AbstractContextManager[Any]:
    """Inside the block, a forward of B rows runs blocks below ``start`` once and returns
    ``B * repeats`` rows (each row repeated in place); nothing when there is nothing to share."""
    if start <= 0 or repeats <= 1:
        return nullcontext()
    return fanned_out(find_layers(model, layers_path).blocks, start, repeats)


def shared_prompt_cache(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, repeats: int
) -> dict[str, Any] | None:
    """Prefill all but the last token of left-padded prompts once; copy the cache per row.

    For generation with ``positions="generated"``, steering starts at each prompt's last
    token, so everything before it is the same at every coefficient. The returned keyword
    arguments (the cache under the model's own keyword, see :func:`steerlab.upstream.cache_keyword`)
    go to ``model.generate`` together with the full prompts repeated ``repeats`` times in
    place; ``generate`` then feeds only the last prompt token, on top of the copied cache.

    Args:
        input_ids: (batch, seq) left-padded prompts.
        attention_mask: (batch, seq) their padding mask.
        repeats: coefficient rows per prompt.

    Returns:
        ``{cache keyword: cache of batch * repeats rows}``, or None when nothing can be shared
        (one repeat, or a prompt of one token).
    """
    if repeats <= 1 or int(attention_mask.sum(-1).min()) < 2:
        return None
    prefix_mask = attention_mask[:, :-1]
    positions = (prefix_mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        output = model(
            input_ids=input_ids[:, :-1],
            attention_mask=prefix_mask,
            position_ids=positions,
            use_cache=True,
        )
    cache = returned_cache(output)
    if cache is None:
        return None
    cache.batch_repeat_interleave(repeats)
    return {cache_keyword(model): cache}
