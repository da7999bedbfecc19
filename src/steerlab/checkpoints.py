"""Checkpoint folders steerlab writes, readable to the same model by transformers 4.x and 5.x.

transformers 5 saves RoPE settings only under ``rope_parameters``; transformers 4.x (what
steering-vectors and repeng users have, and what many serving stacks read) does not know that
key and silently falls back to its defaults (``rope_theta = 10000``): the same weights then
give other hidden states. Every checkpoint steerlab writes (the embedded model's cache,
``finetune --merge``, ``tune``'s merged model) therefore carries the legacy keys alongside the
new ones, with the same values:

* ``rope_parameters.rope_theta`` → ``rope_theta``; a non-default ``rope_type`` with its
  settings → ``rope_scaling``; ``rope_parameters.partial_rotary_factor`` →
  ``partial_rotary_factor``;
* per-layer-type RoPE (``{"full_attention": {...}, "sliding_attention": {...}}``, Gemma 3)
  → ``rope_theta``/``rope_scaling`` from the full-attention entry and
  ``rope_local_base_freq`` from the sliding one;
* ``dtype`` → ``torch_dtype``;
* the same inside a nested ``text_config``.

A key already present is never overwritten. ``tests/test_checkpoints.py`` checks the keys and
that transformers 5 loads the rewritten folder to bit-identical logits;
``benchmarks/compat_transformers4.py`` loads a steerlab checkpoint with transformers 4.x in a
separate virtual environment and compares hidden states.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from steerlab.errors import DataError
from steerlab.provenance import atomic_write

CONFIG_FILE = "config.json"


def legacy_config_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The transformers 4.x keys a transformers 5 ``config.json`` dict lacks.

    Args:
        config: a ``config.json`` as a dict (not modified).

    Returns:
        ``{key: value}`` to add at the top level (``"text_config"``, when present, maps to the
        nested config with its own keys added).
    """
    added: dict[str, Any] = {}
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and rope:
        if all(isinstance(value, dict) for value in rope.values()):
            full = rope.get("full_attention") or rope.get("default") or next(iter(rope.values()))
            _flat_rope(full, added)
            sliding = rope.get("sliding_attention")
            if isinstance(sliding, dict) and "rope_theta" in sliding:
                added["rope_local_base_freq"] = sliding["rope_theta"]
        else:
            _flat_rope(rope, added)
    if "dtype" in config:
        added["torch_dtype"] = config["dtype"]
    text = config.get("text_config")
    if isinstance(text, dict):
        nested = legacy_config_keys(text)
        if any(key not in text for key in nested):
            added["text_config"] = {**text, **{k: v for k, v in nested.items() if k not in text}}
    return {key: value for key, value in added.items() if key not in config or key == "text_config"}


def _flat_rope(rope: dict[str, Any], added: dict[str, Any]) -> None:
    if "rope_theta" in rope:
        added["rope_theta"] = rope["rope_theta"]
    if "partial_rotary_factor" in rope:
        added["partial_rotary_factor"] = rope["partial_rotary_factor"]
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        added["rope_scaling"] = {
            key: value
            for key, value in rope.items()
            if key not in ("rope_theta", "partial_rotary_factor", "type")
        }


def add_legacy_config_keys(folder: str | os.PathLike[str]) -> bool:
    """Add :func:`legacy_config_keys` to ``folder/config.json`` in place (atomically).

    Returns:
        Whether the file changed (False when every legacy key was already there).

    Raises:
        DataError: ``config.json`` is missing or not a JSON object.
    """
    path = Path(folder) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (not a checkpoint folder)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise DataError(f"{path}: expected a JSON object")
    added = legacy_config_keys(config)
    if not added:
        return False
    with atomic_write(path) as handle:
        json.dump({**config, **added}, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return True


def save_checkpoint(model: Any, tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """``save_pretrained`` for the model and tokenizer, then the legacy config keys.

    Args:
        model: a transformers ``PreTrainedModel`` (not a PEFT wrapper: merge first).
        tokenizer: its tokenizer, or None.
        folder: the checkpoint folder to write (callers write into a temporary folder and
            rename it, so a crash never leaves half a checkpoint).

    Returns:
        ``folder``.
    """
    target = Path(folder)
    model.save_pretrained(target)
    if tokenizer is not None:
        tokenizer.save_pretrained(target)
    add_legacy_config_keys(target)
    return target
