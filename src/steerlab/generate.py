"""Steered text generation: B prompts x K coefficients as batched ``generate`` calls."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import format_chat, messages_for, needs_special_tokens
from steerlab.errors import DataError, MeasuredNormsNotice
from steerlab.layers import LayerSelection, parse_layers
from steerlab.models import model_device
from steerlab.progress import track
from steerlab.record import NORM_TEXTS, measure_activation_norms
from steerlab.sharing import plan_chunks, shared_prompt_cache
from steerlab.steer import Operator, Positions, Scale, coefficient_tensor, resolve_scale, steer
from steerlab.validation import check_int, check_number
from steerlab.vector import SteeringVector


@dataclass(frozen=True)
class Generation:
    """One generated continuation.

    Attributes:
        prompt: the user prompt (before the chat template).
        coefficient: the steering coefficient used (0 = unsteered).
        text: the generated continuation, special tokens removed.
    """

    prompt: str
    coefficient: float
    text: str


def render_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], system: str | None, chat: bool
) -> list[str]:
    """Prompt texts as the model reads them (chat template applied when ``chat``)."""
    if chat:
        return [format_chat(tokenizer, messages_for(p, system)) for p in prompts]
    return list(prompts)


def with_norms(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    vector: SteeringVector,
    layers: LayerSelection = None,
    layers_path: str | None = None,
) -> SteeringVector:
    """``vector`` with the activation norms of the steered layers, measured on built-in text
    (with a one-line :class:`~steerlab.errors.MeasuredNormsNotice`) where it lacks them."""
    chosen = vector.layers if layers is None else parse_layers(layers, vector.metadata.num_layers)
    lacking = [layer for layer in chosen if layer not in (vector.activation_norms or {})]
    lacking = [layer for layer in lacking if layer in vector.directions]
    if not lacking:
        return vector
    warnings.warn(
        f"the vector records no activation norm for layer(s) {', '.join(map(str, lacking))}: "
        f"measured them on {len(NORM_TEXTS)} built-in texts for scale='norm'",
        MeasuredNormsNotice,
        stacklevel=3,
    )
    measured = measure_activation_norms(model, tokenizer, lacking, layers_path=layers_path)
    return vector.with_activation_norms(measured)


def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    vector: SteeringVector | None = None,
    coefficients: Sequence[float] = (0.0,),
    *,
    layers: LayerSelection = None,
    operator: Operator = "add",
    normalize: bool | None = None,
    scale_by_norm: bool | None = None,
    positions: Positions = "all",
    max_new_tokens: int = 48,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    system: str | None = None,
    chat: bool = True,
    batch_size: int = 32,
    layers_path: str | None = None,
    progress: bool = False,
    scale: Scale | None = None,
) -> list[Generation]:
    """Generate a continuation of every prompt at every coefficient.

    Rows (prompt x coefficient) are batched with one coefficient per row, so K coefficients
    cost one ``generate`` call per batch rather than K.

    Args:
        model: a transformers causal LM.
        tokenizer: its tokenizer (left padding is used).
        prompts: user prompts.
        vector: the steering vector; ``None`` generates unsteered (coefficients ignored).
        coefficients: the coefficients to try for each prompt.
        layers, operator, positions, layers_path: as in :func:`steerlab.steer`.
        normalize, scale_by_norm: deprecated: use ``scale``.
        scale: what the coefficients are measured in (:func:`steerlab.steer`); default
            ``norm``, a fraction of each layer's typical activation norm (0.1-0.3 steers
            visibly on middle layers). A vector without recorded norms gets them measured on
            built-in text first, with a :class:`~steerlab.errors.MeasuredNormsNotice`.
        max_new_tokens: tokens to generate.
        temperature: 0 for greedy decoding, else sampling temperature.
        top_p: nucleus sampling mass when sampling.
        seed: random seed for sampling.
        system: optional system prompt.
        chat: apply the chat template (False: prompts are raw text).
        batch_size: rows per ``generate`` call.
        progress: show a progress bar.

    Returns:
        One :class:`Generation` per prompt and coefficient, prompt-major.
    """
    if not prompts:
        raise DataError("no prompts to generate from")
    check_int(max_new_tokens, "max_new_tokens", minimum=1)
    check_number(temperature, "temperature", low=0.0)
    values = coefficient_tensor(list(coefficients)).tolist()
    resolved = resolve_scale(scale, normalize, scale_by_norm, default="norm")
    if vector is None:
        values = [0.0]  # unsteered: one row per prompt
    elif resolved in ("norm", "vector_norm"):
        vector = with_norms(model, tokenizer, vector, layers, layers_path)
    texts = render_prompts(tokenizer, prompts, system, chat)
    for number, text in enumerate(texts, start=1):
        if not text.strip() and not tokenizer(text, add_special_tokens=True)["input_ids"]:
            raise DataError(f"prompt {number} is empty: without a chat template no token is left")
    rows = [(i, c) for i in range(len(prompts)) for c in values]
    # positions="generated" steers from each prompt's last token on: the rest of a prompt
    # is prefilled once and its KV cache copied to the prompt's coefficient rows.
    share = vector is not None and positions == "generated" and len(values) > 1
    plan = plan_chunks([i for i, _ in rows], batch_size, share)
    device = model_device(model)
    tokenizer.padding_side = "left"
    texts_out: list[str | None] = [None] * len(rows)
    for chunk in track(plan, "generating", total=len(plan), enabled=progress):
        source_texts = [texts[rows[r][0]] for r in chunk.sources]
        encoded = tokenizer(
            source_texts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=needs_special_tokens(tokenizer, source_texts[0]),
        ).to(device)
        cached = (
            shared_prompt_cache(
                model, encoded["input_ids"], encoded["attention_mask"], chunk.repeats
            )
            or {}
        )
        ids = encoded["input_ids"].repeat_interleave(chunk.repeats, dim=0)
        mask = encoded["attention_mask"].repeat_interleave(chunk.repeats, dim=0)
        context = (
            steer(
                model,
                vector,
                [rows[r][1] for r in chunk.rows],
                layers=layers,
                operator=operator,
                positions=positions,
                layers_path=layers_path,
                scale=resolved,  # type: ignore[arg-type]
            )
            if vector is not None
            else nullcontext()
        )
        torch.manual_seed(seed + chunk.rows[0])
        sampling = temperature > 0
        with context, torch.inference_mode():
            generated = model.generate(  # type: ignore[operator]
                input_ids=ids,
                attention_mask=mask,
                **cached,
                max_new_tokens=max_new_tokens,
                do_sample=sampling,
                temperature=temperature if sampling else None,
                top_p=top_p if sampling else None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
        decoded = tokenizer.batch_decode(generated[:, ids.shape[1] :], skip_special_tokens=True)
        for r, text in zip(chunk.rows, decoded, strict=True):
            texts_out[r] = text.strip()
    return [
        Generation(prompts[i], c, text or "") for (i, c), text in zip(rows, texts_out, strict=True)
    ]
