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
* the same inside a nested ``text_config``;
* in ``tokenizer_config.json``, the class name ``TokenizersBackend`` (which 4.x does not
  know) → ``PreTrainedTokenizerFast``, which transformers 5 maps to the same class.

A key already present is never overwritten. ``tests/test_checkpoints.py`` checks the keys and
that transformers 5 loads the rewritten folder to bit-identical logits;
``benchmarks/compat_transformers4.py`` loads a steerlab checkpoint with transformers 4.x in a
separate virtual environment and compares hidden states.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from steerlab.errors import DataError
from steerlab.provenance import atomic_write

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# transformers 5's name for the fast tokenizer class; 5.x keeps the 4.x name as an alias.
_RENAMED_TOKENIZER_CLASSES = {"TokenizersBackend": "PreTrainedTokenizerFast"}


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


def legacy_tokenizer_keys(tokenizer_config: dict[str, Any]) -> dict[str, Any]:
    """The ``tokenizer_config.json`` values transformers 4.x needs instead of 5.x's."""
    renamed = _RENAMED_TOKENIZER_CLASSES.get(tokenizer_config.get("tokenizer_class", ""))
    return {"tokenizer_class": renamed} if renamed else {}


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (not a checkpoint folder)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def _update(path: Path, data: dict[str, Any], changes: dict[str, Any]) -> bool:
    if not changes:
        return False
    with atomic_write(path) as handle:
        json.dump({**data, **changes}, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return True


def add_legacy_config_keys(folder: str | os.PathLike[str]) -> bool:
    """Add :func:`legacy_config_keys` to ``folder/config.json`` and apply
    :func:`legacy_tokenizer_keys` to ``folder/tokenizer_config.json`` (when there is one), in
    place and atomically.

    Returns:
        Whether a file changed (False when everything was already readable by 4.x).

    Raises:
        DataError: ``config.json`` is missing, or a file is not a JSON object.
    """
    config_path = Path(folder) / CONFIG_FILE
    config = _read_object(config_path)
    changed = _update(config_path, config, legacy_config_keys(config))
    tokenizer_path = Path(folder) / TOKENIZER_CONFIG_FILE
    if tokenizer_path.is_file():
        tokenizer_config = _read_object(tokenizer_path)
        changed |= _update(
            tokenizer_path, tokenizer_config, legacy_tokenizer_keys(tokenizer_config)
        )
    return changed


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
    return make_portable(target, tokenizer)


def make_portable(folder: str | os.PathLike[str], tokenizer: Any = None) -> Path:
    """:func:`add_legacy_config_keys` on a checkpoint folder something else saved (e.g.
    ``Trainer.save_model``); with ``tokenizer``, the renamed tokenizer class is kept only if
    transformers 5 then tokenises as ``tokenizer`` does.

    Returns:
        ``folder``.
    """
    target = Path(folder)
    tokenizer_path = target / TOKENIZER_CONFIG_FILE
    before = tokenizer_path.read_bytes() if tokenizer_path.is_file() else None
    add_legacy_config_keys(target)
    if tokenizer is not None and before is not None and not _same_tokens(tokenizer, target):
        # The 4.x class name made transformers 5 tokenise differently: 5.x must stay right.
        with atomic_write(tokenizer_path, "wb") as handle:
            handle.write(before)
        warnings.warn(
            f"{tokenizer_path}: kept transformers 5's tokenizer class; transformers 4.x will "
            "not load this tokenizer",
            stacklevel=2,
        )
    return target


_PROBE_TEXTS = ("Answer with (A) or (B). The answer is (A).", "  two\nlines\t", "Ünï 🙂")


def _same_tokens(tokenizer: Any, folder: Path) -> bool:
    reloaded = AutoTokenizer.from_pretrained(folder)
    return all(reloaded(t).input_ids == tokenizer(t).input_ids for t in _PROBE_TEXTS)
