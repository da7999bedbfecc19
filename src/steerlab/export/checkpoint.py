"""Saving a folded model as a plain checkpoint folder, checked to load back as folded.

The folder is what ``save_pretrained`` writes (through :func:`steerlab.checkpoints.
save_checkpoint`, so that transformers 4.x and 5.x read the same config), plus
``steerlab_fold.json``: the fold's provenance (operator, coefficient, scale, layers, the
vector's sha256 and metadata, the vector file's sha256, steerlab's version and git revision).

It is written to a hidden temporary folder beside the target and renamed into place only
after a check that transformers, reading the saved ``config.json`` alone, builds a model with
exactly the saved tensors: a bias that the config's switch would not create, or tied
embeddings that would be re-tied, would otherwise be dropped without an error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModelForCausalLM

from steerlab.checkpoints import save_checkpoint
from steerlab.errors import SpecError
from steerlab.export.fold import fold_record
from steerlab.provenance import atomic_write

FOLD_FILE = "steerlab_fold.json"


def check_new_folder(folder: Path, option: str = "output folder") -> None:
    """Refuse an output that exists and is a file or a non-empty folder.

    Raises:
        SpecError: one line naming ``folder``.
    """
    if folder.exists() and not folder.is_dir():
        raise SpecError(f"{option} {folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise SpecError(f"{option} {folder}: exists and is not empty; give a new folder")


def save_folded(model: Any, tokenizer: Any, output_dir: str | os.PathLike[str]) -> Path:
    """Save a model :func:`~steerlab.export.fold.fold` returned as a checkpoint folder.

    Args:
        model: the folded model.
        tokenizer: its tokenizer (saved with it), or None.
        output_dir: a new (or empty) folder.

    Returns:
        ``output_dir``.

    Raises:
        SpecError: ``output_dir`` is not new, ``model`` was not folded, or the saved folder
            would not load as folded (nothing is left behind).
    """
    record = fold_record(model)
    target = Path(output_dir)
    check_new_folder(target)
    with new_folder(target) as tmp:
        save_checkpoint(model, tokenizer, tmp)
        write_record(tmp, record)
        check_reloads(tmp, record)
    return target


@contextmanager
def new_folder(target: Path) -> Iterator[Path]:
    """A hidden temporary folder beside ``target`` (new or empty: see
    :func:`check_new_folder`), renamed into place when the block ends, removed on an error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.is_dir():
            target.rmdir()  # empty: checked before
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_record(folder: Path, record: Mapping[str, Any]) -> None:
    """The fold's provenance as ``folder/steerlab_fold.json``, atomically."""
    with atomic_write(folder / FOLD_FILE) as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")


def check_reloads(folder: Path, record: Mapping[str, Any]) -> None:
    """Check that ``from_pretrained(folder)`` builds a model with exactly the saved tensors
    (on the meta device: nothing is read but the config and the tensor names).

    Raises:
        SpecError: the reloaded config lost the bias switch or re-ties the embeddings, or
            transformers reports a saved tensor it would drop, one it would miss, or one of
            another shape.
    """
    config = text_config_of(AutoConfig.from_pretrained(folder))
    switch = record.get("bias_switch")
    if switch and getattr(config, switch["attribute"], None) is not True:
        raise SpecError(
            f"the saved config lost {switch['attribute']}=True, so transformers would load the "
            "folded checkpoint without its bias: not saved"
        )
    if record.get("untied_embeddings") and getattr(config, "tie_word_embeddings", False):
        raise SpecError(
            "the saved config ties the embeddings again, so transformers would load the folded "
            "checkpoint with the wrong output head: not saved"
        )
    try:
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            folder, output_loading_info=True, device_map="meta"
        )
    except (ValueError, TypeError, NotImplementedError, ImportError):
        # A transformers (or accelerate) that cannot load onto the meta device: load for real.
        loaded = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    info = loaded[1]
    for kind, verb in (
        ("unexpected_keys", "drop"),
        ("missing_keys", "not find"),
        ("mismatched_keys", "reshape"),
    ):
        keys = sorted(str(key) for key in info.get(kind, ()))
        if keys:
            raise SpecError(
                f"transformers would {verb} {keys[0]} when loading the folded checkpoint: not saved"
            )


def text_config_of(config: Any) -> Any:
    """The text part of a config (multimodal configs nest it)."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config
