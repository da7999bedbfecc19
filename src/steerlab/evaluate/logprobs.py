"""Log-probabilities under steering, batched: next tokens, continuations, token NLLs.

Every function takes one steering coefficient per row, so the rows of a sweep (items x
coefficients) run as ordinary batches with per-row coefficients. With ``vector=None`` the
model runs unsteered.

Rows with the same input that differ only in their coefficient share the work below the
first steered layer: each distinct input runs once through the blocks no coefficient
changes, and is fanned out to its rows from the first steered block on
(:mod:`steerlab.sharing`); with one steered layer at 15 of
30 and 9 coefficients an item costs 15 + 9 x 15 block passes instead of 9 x 30. A row's
result is the same, to float rounding, whether or not it shares.

Prompts are left padded with explicit position ids, so a row's result does not depend on
what else is in its batch beyond float rounding. :func:`first_token_id`
finds the token whose log-probability an answer's likelihood is read from.

(This module was ``steerlab.evaluate.scoring``; the scorers that judge responses are
:mod:`steerlab.evaluate.scorers`.)
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import needs_special_tokens
from steerlab.errors import DataError
from steerlab.models import model_device
from steerlab.progress import track
from steerlab.sharing import fan_out, plan_chunks, shared_start
from steerlab.steer import SteerSpec, apply_spec
from steerlab.vector import SteeringVector


def steering_context(
    model: nn.Module,
    vector: SteeringVector | None,
    spec: SteerSpec | None,
    coefficients: Sequence[float],
) -> AbstractContextManager[Any]:
    """``steer`` with one coefficient per row, or nothing when ``vector`` is None."""
    if vector is None:
        return nullcontext()
    base = spec or SteerSpec()
    return apply_spec(
        model, vector, replace(base, coefficient=tuple(float(c) for c in coefficients))
    )


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _keeps_last_logits_only(model: nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def last_logits(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
) -> torch.Tensor:
    """Logits at the last position of each text (one batch, left padded).

    Returns:
        (batch, vocab) float32 logits on the CPU.
    """
    tokenizer.padding_side = "left"
    encoded = tokenizer(
        list(texts),
        return_tensors="pt",
        padding=True,
        add_special_tokens=needs_special_tokens(tokenizer, texts[0]),
    )
    device = model_device(model)
    mask = encoded["attention_mask"].to(device)
    extra: dict[str, Any] = {"logits_to_keep": 1} if _keeps_last_logits_only(model) else {}
    with torch.inference_mode():
        out = model(
            input_ids=encoded["input_ids"].to(device),
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=False,
            **extra,
        )
    return out.logits[:, -1].float().cpu()


def next_token_logprobs(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    token_ids: Sequence[Sequence[int]],
    coefficients: Sequence[float],
    *,
    vector: SteeringVector | None = None,
    spec: SteerSpec | None = None,
    batch_size: int = 16,
    progress: bool = False,
    description: str = "scoring",
) -> list[torch.Tensor]:
    """Log-probabilities (over the whole vocabulary) of chosen next tokens, per row.

    Args:
        texts: prompt texts, one per row (chat template already applied).
        token_ids: for each row, the token ids whose log-probabilities to return.
        coefficients: the steering coefficient of each row.
        vector: the steering vector, or None for unsteered runs.
        spec: steering settings (layers, operator, normalisation); its coefficient is
            replaced by the rows' coefficients.
        batch_size: rows per forward pass.

    Returns:
        One float32 tensor of shape (len(token_ids[i]),) per row.
    """
    if not (len(texts) == len(token_ids) == len(coefficients)):
        raise DataError("texts, token_ids and coefficients must have one entry per row")
    shared = shared_start(model, vector, spec)
    plan = plan_chunks(texts, batch_size, shared > 0)
    out: list[torch.Tensor | None] = [None] * len(texts)
    for chunk in track(plan, description, total=len(plan), enabled=progress):
        with (
            steering_context(model, vector, spec, [coefficients[i] for i in chunk.rows]),
            fan_out(model, shared, chunk.repeats),
        ):
            logits = last_logits(model, tokenizer, [texts[i] for i in chunk.sources])
        logprobs = torch.log_softmax(logits, dim=-1)
        for j, i in enumerate(chunk.rows):
            out[i] = logprobs[j, list(token_ids[i])]
    return _filled(out)


def _filled(values: Sequence[Any | None]) -> list[Any]:
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:  # pragma: no cover - every plan covers every row
        raise AssertionError(f"rows {missing[:5]} were not computed")
    return list(values)


def token_nll(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    coefficients: Sequence[float],
    *,
    vector: SteeringVector | None = None,
    spec: SteerSpec | None = None,
    batch_size: int = 8,
    max_length: int = 512,
    progress: bool = False,
) -> list[torch.Tensor]:
    """Negative log-likelihood of every token after the first, per row.

    Returns:
        One float32 tensor of shape (n_tokens_i - 1,) per row.
    """
    if len(texts) != len(coefficients):
        raise DataError("texts and coefficients must have one entry per row")
    device = model_device(model)
    shared = shared_start(model, vector, spec)
    plan = plan_chunks(texts, batch_size, shared > 0)
    out: list[torch.Tensor | None] = [None] * len(texts)
    for chunk in track(plan, "perplexity", total=len(plan), enabled=progress):
        tokenizer.padding_side = "right"
        batch = [texts[i] for i in chunk.sources]
        encoded = tokenizer(
            batch,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
            add_special_tokens=needs_special_tokens(tokenizer, batch[0]),
        )
        tokenizer.padding_side = "left"
        ids = encoded["input_ids"].to(device)
        mask = encoded["attention_mask"].to(device)
        for j in range(len(batch)):
            if int(mask[j].sum()) < 2:
                raise DataError(f"text {batch[j][:40]!r} has fewer than 2 tokens")
        with (
            steering_context(model, vector, spec, [coefficients[i] for i in chunk.rows]),
            fan_out(model, shared, chunk.repeats),
            torch.inference_mode(),
        ):
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        ids = ids.repeat_interleave(chunk.repeats, dim=0)
        mask = mask.repeat_interleave(chunk.repeats, dim=0)
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        nll = -logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for j, i in enumerate(chunk.rows):
            out[i] = nll[j, : int(mask[j].sum()) - 1].cpu()
    return _filled(out)


def first_token_id(
    tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, *, single: bool = False
) -> int:
    """Token id of the first token of ``answer`` as the model would write it after ``prompt``.

    The answer is tokenised in context (``prompt + answer``), since most tokenizers merge a
    leading space or bracket with what follows; when the context tokenisation does not extend
    the prompt's, the answer alone is tokenised instead.

    Args:
        tokenizer: the model's tokenizer.
        prompt: the text the answer follows (chat template applied).
        answer: the answer text (``"True"``, ``"B"``...).
        single: require the answer to be exactly one token (answer letters).

    Raises:
        DataError: the answer tokenises to nothing, or (``single``) to more than one token.
    """
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
    added = len(full) - len(base)
    if full[: len(base)] == base and (added == 1 if single else added >= 1):
        return int(full[len(base)])
    alone = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if single and len(alone) != 1:
        raise DataError(f"answer letter {answer!r} is not a single token for this tokenizer")
    if not alone:
        raise DataError(f"answer {answer!r} tokenises to nothing")
    return int(alone[0])


def letter_token_id(tokenizer: PreTrainedTokenizerBase, prompt: str, letter: str) -> int:
    """Token id of ``letter`` as the model would write it right after ``prompt``.

    :func:`first_token_id` with ``single=True``.

    Raises:
        DataError: if the letter is not a single token in that context.
    """
    return first_token_id(tokenizer, prompt, letter, single=True)


def continuation_logprobs(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[str],
    coefficients: Sequence[float],
    *,
    vector: SteeringVector | None = None,
    spec: SteerSpec | None = None,
    batch_size: int = 16,
    progress: bool = False,
    description: str = "scoring answers",
) -> list[tuple[float, int]]:
    """Total log-probability of each continuation after its prompt, per row.

    Returns:
        One ``(sum of token log-probabilities, number of continuation tokens)`` per row.
    """
    if not (len(prompts) == len(continuations) == len(coefficients)):
        raise DataError("prompts, continuations and coefficients must have one entry per row")
    device = model_device(model)
    shared = shared_start(model, vector, spec)
    plan = plan_chunks(list(zip(prompts, continuations, strict=True)), batch_size, shared > 0)
    out: list[tuple[float, int] | None] = [None] * len(prompts)
    for chunk in track(plan, description, total=len(plan), enabled=progress):
        encoded_rows = []
        for i in chunk.sources:
            text = prompts[i] + continuations[i]
            enc = tokenizer(
                text,
                add_special_tokens=needs_special_tokens(tokenizer, text),
                return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)),
            )
            ids = list(enc["input_ids"])
            if "offset_mapping" in enc:
                prompt_end = len(prompts[i])
                span = [end > prompt_end for _, end in enc["offset_mapping"]]
            else:
                n_prompt = len(tokenizer(prompts[i], add_special_tokens=False)["input_ids"])
                span = [k >= n_prompt for k in range(len(ids))]
            span[0] = False  # the first token has no prediction
            if not any(span):
                raise DataError(f"continuation {continuations[i]!r} adds no token")
            encoded_rows.append((ids, span))
        width = max(len(ids) for ids, _ in encoded_rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        n_sources = len(chunk.sources)
        ids_t = torch.full((n_sources, width), pad, dtype=torch.long)
        mask = torch.zeros((n_sources, width), dtype=torch.long)
        span_t = torch.zeros((n_sources, width), dtype=torch.bool)
        for j, (ids, span) in enumerate(encoded_rows):
            ids_t[j, : len(ids)] = torch.tensor(ids)
            mask[j, : len(ids)] = 1
            span_t[j, : len(ids)] = torch.tensor(span)
        with (
            steering_context(model, vector, spec, [coefficients[i] for i in chunk.rows]),
            fan_out(model, shared, chunk.repeats),
            torch.inference_mode(),
        ):
            logits = model(
                input_ids=ids_t.to(device), attention_mask=mask.to(device), use_cache=False
            ).logits
        ids_t = ids_t.repeat_interleave(chunk.repeats, dim=0)
        span_t = span_t.repeat_interleave(chunk.repeats, dim=0)
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1).cpu()
        token_lp = logprobs.gather(-1, ids_t[:, 1:].unsqueeze(-1)).squeeze(-1)
        for j, i in enumerate(chunk.rows):
            chosen = span_t[j, 1:]
            out[i] = (float(token_lp[j][chosen].sum()), int(chosen.sum()))
    return _filled(out)
