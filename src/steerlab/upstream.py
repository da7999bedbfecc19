"""What steerlab assumes about transformers, in one place, each assumption tested.

transformers renames internal arguments between minor releases (5.24 passes the KV cache
to the decoder stack as ``cache=`` where 5.23 passed ``past_key_values=``), so steerlab reads
a forward call through the stable parts only. This module reads a decoder stack's forward
call; the other assumptions live next to the code that makes them and are listed here so
that a failing upstream release can be traced to one line. Each has a test on the tiny
models of eight architectures in ``tests/test_upstream.py``:

* **Forward call** (:func:`read_call`, used by :mod:`steerlab.steer`): the KV cache is found
  by *type* (an instance of the public ``transformers.Cache``), never by argument name, and
  its length comes from the documented ``Cache.get_seq_length()``. ``attention_mask`` and
  ``input_ids`` are read by those names, the documented names of every model's ``forward``
  and of the tokenizer's output (positional arguments are bound to names through the
  signature). Nothing else of the call is read: how many tokens a call feeds comes from
  the hidden states themselves.
* **Incremental decoding** (:mod:`steerlab.serve.engine`, which decodes step by step to let
  rows leave a batch): the model's ``forward`` takes the KV cache under the name its
  signature says (:func:`cache_keyword`: ``cache`` from 5.24, ``past_key_values`` before),
  the cache comes back in the output found by type (:func:`returned_cache`), and a finished
  row is dropped with the documented ``Cache.batch_select_indices``.
* **Decoder block outputs** (:func:`steerlab.hooks.hidden_of`): a block returns its hidden
  states ``(batch, seq, d_model)`` as a tensor, or first in a tuple.
* **Decoder block list** (:mod:`steerlab.layers`): a ``ModuleList`` at a known dotted path
  per model type, else the shallowest list of ``num_hidden_layers`` identical blocks.
* **Model forward** (:mod:`steerlab.record`, :mod:`steerlab.generate`): ``model(input_ids=,
  attention_mask=, use_cache=)`` and ``model.generate(...)``, the documented public API.
* **Configs** (:mod:`steerlab.models`): ``config.get_text_config()``, ``hidden_size`` /
  ``n_embd``, ``num_hidden_layers`` / ``n_layer``, ``model_type``.
* **GGUF loading** (:mod:`steerlab.gguf_models`, the embedded model and any ``.gguf``
  file): ``from_pretrained(..., gguf_file=...)`` de-quantises, and
  ``model.hf_quantizer.remove_quantization_config(model)`` (when a quantizer is attached)
  makes the saved copy loadable as a plain checkpoint. The list of architectures it reads
  (``transformers.modeling_gguf_pytorch_utils.GGUF_SUPPORTED_ARCHITECTURES``) is only used
  to word an error early; without it, transformers' own refusal is reworded.
* **Trainer** (:mod:`steerlab.tuning.finetune`): ``Trainer.compute_loss(model, inputs,
  return_outputs, num_items_in_batch)``, and for gradient accumulation the attributes
  ``loss_is_scaled_for_ga`` / ``model_accepts_loss_kwargs`` / ``compute_loss_func`` /
  ``current_gradient_accumulation_steps``, each read with a fallback when absent.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Cache


@dataclass(frozen=True)
class CallInfo:
    """What a decoder stack's forward call says about the tokens it feeds.

    Attributes:
        cached: tokens already in the KV cache before this call (0: no cache, or empty).
        has_cache: a cache object was passed (``use_cache=False`` passes none).
        attention_mask: the 2-D ``(batch, cached + seq)`` or ``(batch, seq)`` padding mask
            if one was passed as such, else ``None`` (absent, or a prepared 4-D mask).
        input_ids: the ``(batch, seq)`` token ids if passed, else ``None``.
    """

    cached: int
    has_cache: bool
    attention_mask: torch.Tensor | None
    input_ids: torch.Tensor | None


def _cache_length(cache: Any) -> int:
    length = getattr(cache, "get_seq_length", None)
    if not callable(length):
        return 0
    try:
        return int(length())
    except (TypeError, ValueError, RuntimeError, IndexError, AttributeError):
        return 0


def _named(
    forward: Callable[..., Any] | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Keyword arguments plus positional ones bound to their parameter names."""
    named = dict(kwargs)
    if args and forward is not None:
        try:
            bound = inspect.signature(forward).bind_partial(*args)
        except (TypeError, ValueError):
            return named
        for name, value in bound.arguments.items():
            named.setdefault(name, value)
    return named


def read_call(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], forward: Callable[..., Any] | None = None
) -> CallInfo:
    """Read a decoder stack's forward call through stable conventions only.

    Args:
        args: positional arguments of the call.
        kwargs: keyword arguments of the call.
        forward: the module's ``forward`` (to name positional arguments), if known.

    Returns:
        The call's :class:`CallInfo`.
    """
    cache = next((value for value in (*args, *kwargs.values()) if isinstance(value, Cache)), None)
    named = _named(forward, args, kwargs) if args else dict(kwargs)
    mask = named.get("attention_mask")
    if not (isinstance(mask, torch.Tensor) and mask.ndim == 2):
        mask = None
    ids = named.get("input_ids")
    if not (isinstance(ids, torch.Tensor) and ids.ndim == 2):
        ids = None
    return CallInfo(
        cached=_cache_length(cache) if cache is not None else 0,
        has_cache=cache is not None,
        attention_mask=mask,
        input_ids=ids,
    )


def cache_keyword(model: Any) -> str:
    """The keyword ``model.forward`` takes a KV cache by: ``cache`` (transformers 5.24 and
    later) or ``past_key_values`` (earlier), read from its signature."""
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"


def returned_cache(output: Any) -> Cache | None:
    """The KV cache in a model's output (found by type, whatever the field is called)."""
    values = output.values() if isinstance(output, Mapping) else vars(output).values()
    return next((value for value in values if isinstance(value, Cache)), None)
