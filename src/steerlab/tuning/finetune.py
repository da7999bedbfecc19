"""Supervised fine-tuning on chats: LoRA (peft) or selected decoder layers, via transformers.

:func:`finetune` is plain SFT with an assistant-only loss. It runs a
:class:`~steerlab.tuning.trainer.SteerlabTrainer` (a :class:`transformers.Trainer`), so
``accelerate launch``, DeepSpeed and FSDP work unchanged, checkpoints every ``save_steps``
and resumes from the last checkpoint in the output folder. Under ``accelerate launch`` or
``torchrun`` the config's ``batch_size`` is the global batch (each of N processes takes
``batch_size / N``), so N processes give the loss curve of one; only the main process
writes the run folder's files, and every process returns once they are written.
Subclasses of the trainer add loss terms (representation tuning adds a cosine loss on activations).

The output folder (a "run folder", see :mod:`steerlab.tuning.runs`) holds::

    adapter_config.json, adapter_model.safetensors, tokenizer files   (LoRA runs)
    config.json, model.safetensors, tokenizer files                    (layer fine-tunes)
    merged/                     with merge=True: a plain transformers checkpoint
    loss_log.jsonl              one row per logged step (step, loss, learning_rate, ...)
    steerlab_finetune.json      provenance: versions, seed, data hash, config, base model
    checkpoint-N/               the last two Trainer checkpoints (resumption)

so ``steerlab.load_model(run_folder)`` loads the tuned model (a LoRA adapter is loaded on
top of its base, named in ``adapter_config.json`` as given, e.g. ``"default"``, and merged).

This module also re-exports, for the import paths of earlier versions, the names that now
live in :mod:`~steerlab.tuning.config`, :mod:`~steerlab.tuning.trainer`,
:mod:`~steerlab.tuning.prepare` and :mod:`~steerlab.tuning.runs`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    set_seed,
)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import validate_messages
from steerlab.checkpoints import make_portable, save_checkpoint
from steerlab.data.chats import Chat, load_chats
from steerlab.errors import DataError, SpecError
from steerlab.provenance import git_revision, library_version, remove_stale_temporaries, utc_now
from steerlab.tuning.config import SCHEDULERS, FinetuneConfig
from steerlab.tuning.data import ChatDataset, chats_sha256, collator_for
from steerlab.tuning.prepare import (
    base_model_id,
    linear_module_names,
    prepare_model,
    training_arguments,
)
from steerlab.tuning.runs import (
    CHECKPOINT_PREFIX,
    LOSS_LOG_FILE,
    MERGED_DIR,
    PROVENANCE_FILE,
    check_output_dir,
    check_resumable,
    checkpoints,
    last_checkpoint,
    log_rows,
    read_loss_log,
    write_loss_log,
    write_record,
)
from steerlab.tuning.trainer import LossLogCallback, SteerlabTrainer

__all__ = [
    "CHECKPOINT_PREFIX",
    "LOSS_LOG_FILE",
    "MERGED_DIR",
    "PROVENANCE_FILE",
    "SCHEDULERS",
    "FinetuneConfig",
    "FinetuneResult",
    "LossLogCallback",
    "SteerlabTrainer",
    "base_model_id",
    "finetune",
    "last_checkpoint",
    "linear_module_names",
    "prepare_model",
    "read_loss_log",
    "training_arguments",
    "write_loss_log",
]

logger = logging.getLogger(__name__)

_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes:
        model: the trained model in eval mode: a ``PeftModel`` for LoRA runs (the merged
            plain model with ``merge=True``), else the model whose layers were trained.
        output_dir: the run folder (loadable with ``steerlab.load_model``).
        final_loss: the last logged training loss (NaN if nothing was logged).
        steps: global step of each logged training loss.
        losses: the logged training losses, one per entry of ``steps``.
        global_step: optimiser steps done in total (across resumptions).
        eval_loss: loss on the held-out chats at the end, when ``eval_fraction > 0``.
        resumed_from: the checkpoint training resumed from, if any.
        adapter_dir: folder holding the LoRA adapter (the run folder), for LoRA runs.
        merged_dir: folder of a plain transformers checkpoint of the tuned model, if any.
        loss_log: the JSONL loss log.
        provenance: the provenance JSON file.
        target_modules: the module names LoRA adapted (empty for layer fine-tunes).
        trained_layers: the decoder layers trained (empty for LoRA runs).
        stopped_early: training ended before its planned steps (early stopping).
    """

    model: nn.Module
    output_dir: Path
    final_loss: float
    steps: tuple[int, ...]
    losses: tuple[float, ...]
    global_step: int
    eval_loss: float | None
    resumed_from: Path | None
    adapter_dir: Path | None
    merged_dir: Path | None
    loss_log: Path
    provenance: Path
    target_modules: tuple[str, ...] = ()
    trained_layers: tuple[int, ...] = field(default=())
    stopped_early: bool = False


def _move_into(source: Path, target: Path, last: Sequence[str], skip: Sequence[str]) -> None:
    """Move the files of ``source`` into ``target``; the names in ``last`` go last."""
    names = sorted(p.name for p in source.iterdir() if p.name not in skip)
    ordered = [n for n in names if n not in last] + [n for n in names if n in last]
    for name in ordered:
        destination = target / name
        if destination.is_dir():
            shutil.rmtree(destination)
        os.replace(source / name, destination)


def _publish_dir(source: Path, target: Path) -> None:
    """Replace folder ``target`` by ``source`` (a rename; the old one is removed first)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)


def _save_final(
    trainer: Trainer,
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    config: FinetuneConfig,
) -> tuple[nn.Module, Path | None, Path | None]:
    """Save the tuned model at the top of ``folder`` (and ``merged/``): (model, adapter, merged)."""
    lora = config.method == "lora"
    tmp = (
        Path(tempfile.mkdtemp(prefix=".final.", dir=folder))
        if trainer.is_world_process_zero()
        else None
    )
    # save_model must run on every process (DeepSpeed/FSDP gather the weights there).
    trainer.save_model(str(tmp) if tmp is not None else str(folder / ".final.unused"))
    merging = lora and config.merge
    if tmp is None:  # another process: the same model and paths, nothing written
        if merging:
            model = trainer.accelerator.unwrap_model(model).merge_and_unload()
        merged = folder / MERGED_DIR if merging else (None if lora else folder)
        return model, (folder if lora else None), merged
    try:
        stale = _MODEL_FILES if lora else _ADAPTER_FILES
        for name in stale:
            (folder / name).unlink(missing_ok=True)
        marker = ("adapter_config.json",) if lora else ("config.json",)
        if not lora:  # the run folder itself is a checkpoint: readable by transformers 4.x too
            make_portable(tmp, tokenizer)
        _move_into(tmp, folder, last=marker, skip=("training_args.bin", "README.md"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    merged_dir: Path | None = None
    if merging:
        unwrapped = trainer.accelerator.unwrap_model(model)
        merged = unwrapped.merge_and_unload()
        tmp_merged = Path(tempfile.mkdtemp(prefix=f".{MERGED_DIR}.", dir=folder))
        try:
            save_checkpoint(merged, tokenizer, tmp_merged)  # with transformers 4.x's keys
            _publish_dir(tmp_merged, folder / MERGED_DIR)
        except BaseException:
            shutil.rmtree(tmp_merged, ignore_errors=True)
            raise
        model = merged
        merged_dir = folder / MERGED_DIR
    else:
        # A merged/ left by an earlier run of this folder no longer matches the weights.
        shutil.rmtree(folder / MERGED_DIR, ignore_errors=True)
        if not lora:
            merged_dir = folder  # the run folder itself is a plain transformers checkpoint
    return model, (folder if lora else None), merged_dir


def _check_batch_divides(config: FinetuneConfig, args: Any) -> None:
    """Refuse a global batch that the processes cannot share equally.

    ``batch_size`` is the global batch of one forward pass: with ``N`` processes
    (``accelerate launch``, ``torchrun``) each takes ``batch_size / N`` examples of it, so
    that the same settings give the same loss curve whatever ``N``.

    Raises:
        SpecError: ``batch_size`` is not a multiple of the number of processes.
    """
    world = int(getattr(args, "world_size", 1) or 1)
    if world > 1 and config.batch_size % world:
        raise SpecError(
            f"batch_size {config.batch_size} is the global batch and does not split among "
            f"{world} processes; use a multiple of {world}"
        )


def _warn_uneven_last_batch(config: FinetuneConfig, args: Any, n_examples: int) -> None:
    """Say when one step per epoch will differ from a single process's run."""
    several = int(getattr(args, "world_size", 1) or 1) > 1
    if several and args.process_index == 0 and n_examples % config.batch_size:
        logger.warning(
            "%d training examples are not a multiple of batch_size %d: with several "
            "processes the last batch of each epoch is completed with examples from its "
            "start (accelerate's even_batches), so that step differs from one process's",
            n_examples,
            config.batch_size,
        )


def _as_chats(chats: Sequence[Sequence[Mapping[str, str]]] | str | os.PathLike[str]) -> list[Chat]:
    if isinstance(chats, str | os.PathLike):
        return load_chats(chats)
    out = [validate_messages(list(chat), f"chat {i}") for i, chat in enumerate(chats)]
    if not out:
        raise DataError("no chats to train on")
    return out


def _split_chats(chats: list[Chat], fraction: float, seed: int) -> tuple[list[Chat], list[Chat]]:
    if fraction <= 0:
        return chats, []
    order = list(range(len(chats)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(chats) * fraction))
    if n_eval >= len(chats):
        raise SpecError(f"eval_fraction {fraction} leaves no training chat out of {len(chats)}")
    held = set(order[:n_eval])
    train = [c for i, c in enumerate(chats) if i not in held]
    return train, [c for i, c in enumerate(chats) if i in held]


# --------------------------------------------------------------------------- finetune


def finetune(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    chats: Sequence[Sequence[Mapping[str, str]]] | str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    config: FinetuneConfig | None = None,
    *,
    progress: bool = True,
    resume: bool = True,
    base_model: str | None = None,
    layers_path: str | None = None,
    trainer_class: type[SteerlabTrainer] = SteerlabTrainer,
    trainer_kwargs: Mapping[str, Any] | None = None,
    training_args: Mapping[str, Any] | None = None,
    kind: str = "finetune",
    provenance_extra: Mapping[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on chats (loss on assistant tokens only), LoRA or selected layers.

    ``model`` is changed in place: LoRA layers are injected into it (as peft does), or the
    selected layers' weights are trained. Run it under ``accelerate launch`` or
    ``torchrun`` for several processes (data parallel; ``config.batch_size`` stays the
    global batch), DeepSpeed or FSDP; nothing else changes. Every process calls it with the
    same arguments; the main process writes the run folder, and all return the same result
    once it is written.

    Args:
        model: the base causal LM (e.g. from :func:`steerlab.load_model`).
        tokenizer: its tokenizer (needs a pad or EOS token).
        chats: the chats, or a JSON/JSONL file of them (see :mod:`steerlab.tuning.data`).
        output_dir: the run folder; created if needed.
        config: the settings (default :class:`FinetuneConfig`).
        progress: show the Trainer's progress bar and log lines.
        resume: continue from the last checkpoint in ``output_dir`` when there is one
            (``max_steps``/``epochs`` count the steps already done); False starts afresh,
            deleting the folder's earlier checkpoints.
        base_model: id recorded in the adapter config so that ``load_model(output_dir)``
            finds the base; default: what the model was loaded from (``"default"`` for the
            embedded model).
        layers_path: dotted path of the decoder blocks, if not found automatically.
        trainer_class: :class:`SteerlabTrainer` or a subclass (extra loss terms).
        trainer_kwargs: extra keyword arguments for ``trainer_class``.
        training_args: ``TrainingArguments`` overrides, e.g. ``{"bf16": True}``.
        kind: recorded in the provenance (subclassing features set their own).
        provenance_extra: more fields for the provenance file.

    Returns:
        A :class:`FinetuneResult` with the trained model, losses and paths.

    Raises:
        SpecError: bad settings, or an output folder holding an incompatible run.
        DataError: malformed or empty data.
        LayerError: layers out of range.
    """
    config = config or FinetuneConfig()
    folder = Path(output_dir)
    all_chats = _as_chats(chats)
    base = base_model or base_model_id(model)
    train_chats, eval_chats = _split_chats(all_chats, config.eval_fraction, config.seed)
    train_data = ChatDataset(tokenizer, train_chats, config.max_length)
    eval_data = ChatDataset(tokenizer, eval_chats, config.max_length) if eval_chats else None
    collator = collator_for(tokenizer)

    folder.mkdir(parents=True, exist_ok=True)
    check_output_dir(folder)
    # Building the arguments joins the process group under accelerate launch / torchrun.
    args = training_arguments(
        config, folder, progress=progress, evaluate=eval_data is not None, overrides=training_args
    )
    _check_batch_divides(config, args)
    _warn_uneven_last_batch(config, args, len(train_data))
    main_process = args.process_index == 0
    # Every process reads the same folder; only the main one tidies it (nothing it removes
    # here is what the others read: stale temporaries, or checkpoints when not resuming).
    checkpoint = last_checkpoint(folder) if resume else None
    if main_process:
        remove_stale_temporaries(folder, (".final.", f".{MERGED_DIR}."))
        if not resume:
            for old in checkpoints(folder):
                shutil.rmtree(old, ignore_errors=True)

    set_seed(config.seed)
    trainable, targets, layers = prepare_model(model, config, base, layers_path)
    record: dict[str, Any] = {
        "kind": kind,
        "status": "running",
        "method": config.method,
        "base_model": base,
        "data_sha256": chats_sha256(all_chats),
        "target_modules": list(targets),
        "trained_layers": list(layers),
        "config": config.to_dict(),
        "seed": config.seed,
        "n_chats": len(all_chats),
        "n_train_examples": len(train_data),
        "n_eval_examples": len(eval_data) if eval_data is not None else 0,
        "n_dropped": train_data.dropped + (eval_data.dropped if eval_data is not None else 0),
        "library_version": library_version(),
        "git_revision": git_revision(),
        "created": utc_now(),
        **dict(provenance_extra or {}),
    }
    if checkpoint is not None:
        check_resumable(folder, record)
        record["resumed_from"] = checkpoint.name

    loss_log = folder / LOSS_LOG_FILE
    callbacks: list[TrainerCallback] = [LossLogCallback(loss_log)]
    if config.early_stopping_patience is not None:
        callbacks.append(
            EarlyStoppingCallback(config.early_stopping_patience, config.early_stopping_threshold)
        )
    trainer = trainer_class(
        model=trainable,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
        **dict(trainer_kwargs or {}),
    )
    if not progress or not trainer.is_world_process_zero():
        trainer.remove_callback(PrinterCallback)  # one process prints the log lines
    provenance = folder / PROVENANCE_FILE
    if trainer.is_world_process_zero():
        write_record(provenance, record)

    model_config = getattr(model, "config", None)
    use_cache = getattr(model_config, "use_cache", None)
    if use_cache is not None:
        model_config.use_cache = False  # type: ignore[union-attr]
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        eval_loss: float | None = None
        if eval_data is not None:
            metrics = trainer.evaluate()
            eval_loss = float(metrics["eval_loss"])
    finally:
        if use_cache is not None:
            model_config.use_cache = use_cache  # type: ignore[union-attr]

    final_model, adapter_dir, merged_dir = _save_final(
        trainer, trainable, tokenizer, folder, config
    )
    final_model.eval()
    history = trainer.state.log_history
    train_rows = [row for row in log_rows(history) if "loss" in row]
    steps = tuple(int(row["step"]) for row in train_rows)
    losses = tuple(float(row["loss"]) for row in train_rows)
    final_loss = losses[-1] if losses else float("nan")
    stopped_early = (
        trainer.state.max_steps > 0 and trainer.state.global_step < trainer.state.max_steps
    )
    best, best_metric = trainer.state.best_model_checkpoint, trainer.state.best_metric
    if trainer.is_world_process_zero():
        write_loss_log(loss_log, history)
        record.update(
            {
                "status": "complete",
                "global_step": trainer.state.global_step,
                "final_loss": final_loss if math.isfinite(final_loss) else None,
                "eval_loss": eval_loss,
                "stopped_early": stopped_early,
                "best_metric": None if best_metric is None else float(best_metric),
                "best_checkpoint": Path(best).name if best else None,
                "finished": utc_now(),
                "merged_dir": MERGED_DIR
                if merged_dir is not None and merged_dir != folder
                else None,
            }
        )
        write_record(provenance, record)
    # Every process returns once the run folder is complete (a caller may load it next).
    trainer.accelerator.wait_for_everyone()
    return FinetuneResult(
        model=final_model,
        output_dir=folder,
        final_loss=final_loss,
        steps=steps,
        losses=losses,
        global_step=int(trainer.state.global_step),
        eval_loss=eval_loss,
        resumed_from=checkpoint,
        adapter_dir=adapter_dir,
        merged_dir=merged_dir,
        loss_log=loss_log,
        provenance=provenance,
        target_modules=targets,
        trained_layers=layers,
        stopped_early=stopped_early,
    )
