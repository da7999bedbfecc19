"""Supervised fine-tuning on chats: LoRA (peft) or selected decoder layers, via transformers.

:func:`finetune` is plain SFT with an assistant-only loss. It runs a
:class:`SteerlabTrainer` (a :class:`transformers.Trainer`), so ``accelerate launch``,
DeepSpeed and FSDP work unchanged, checkpoints every ``save_steps`` and resumes from the
last checkpoint in the output folder. Subclasses of :class:`SteerlabTrainer` add loss terms
(representation tuning adds a cosine loss on activations) through
:meth:`SteerlabTrainer.forward_context` and :meth:`SteerlabTrainer.extra_losses`; their
values are logged each step next to the total loss.

The output folder (a "run folder") holds::

    adapter_config.json, adapter_model.safetensors, tokenizer files   (LoRA runs)
    config.json, model.safetensors, tokenizer files                    (layer fine-tunes)
    merged/                     with merge=True: a plain transformers checkpoint
    loss_log.jsonl              one row per logged step (step, loss, learning_rate, ...)
    steerlab_finetune.json      provenance: versions, seed, data hash, config, base model
    checkpoint-N/               the last two Trainer checkpoints (resumption)

so ``steerlab.load_model(run_folder)`` loads the tuned model (a LoRA adapter is loaded on
top of its base, named in ``adapter_config.json`` as given, e.g. ``"default"``, and merged).

Upstream assumptions (see :mod:`steerlab.upstream`): ``Trainer.compute_loss(model, inputs,
return_outputs, num_items_in_batch)`` and, for gradient accumulation, the Trainer attributes
``loss_is_scaled_for_ga`` / ``model_accepts_loss_kwargs`` / ``compute_loss_func`` /
``current_gradient_accumulation_steps``, each read with a fallback; tested in
``tests/test_upstream.py`` and by the accumulation tests in ``tests/tuning``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
    set_seed,
)
from transformers.pytorch_utils import Conv1D
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import validate_messages
from steerlab.errors import DataError, SpecError
from steerlab.layers import find_layers
from steerlab.models import DEFAULT_MODEL, cache_dir, peft_wrapping
from steerlab.provenance import (
    atomic_write,
    git_revision,
    library_version,
    remove_stale_temporaries,
    utc_now,
)
from steerlab.tuning.data import Chat, ChatDataset, chats_sha256, collator_for, load_chats

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "steerlab_finetune.json"
LOSS_LOG_FILE = "loss_log.jsonl"
MERGED_DIR = "merged"
CHECKPOINT_PREFIX = "checkpoint-"
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
# Linear layers never adapted by default: output heads and MoE routers.
_EXCLUDED_TARGETS = frozenset({"lm_head", "embed_out", "score", "gate", "router"})
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of a fine-tune; every value is validated on construction.

    Attributes:
        rank: LoRA rank ``r``.
        alpha: LoRA ``alpha`` (the update is scaled by ``alpha / rank``).
        dropout: LoRA dropout.
        target_modules: leaf names of the linear modules to adapt, e.g. ``("q_proj",
            "v_proj")``; None: every linear projection inside the decoder blocks
            (attention and MLP), found by scanning the model.
        epochs: passes over the data (ignored when ``max_steps`` is set).
        max_steps: optimiser steps in total (across resumptions); None: from ``epochs``.
        learning_rate: peak learning rate.
        batch_size: examples per device per forward pass.
        gradient_accumulation: forward passes per optimiser step.
        max_length: tokens per example at most (longer chats are cut on the right).
        seed: seed of the LoRA initialisation, data order and eval split.
        logging_steps: log (and write to ``loss_log.jsonl``) every this many steps.
        save_steps: checkpoint every this many steps (the last two are kept).
        eval_fraction: fraction of the chats held out to compute an eval loss (0: none).
        merge: also save a merged, plain transformers checkpoint in ``merged/``.
        full_finetune_layers: instead of LoRA, train all the parameters of these decoder
            layers (0-based) and freeze the rest.
        warmup_steps: linear warm-up steps.
        lr_scheduler: transformers scheduler name (``linear``, ``cosine``, ``constant``...).
        weight_decay: AdamW weight decay.
        early_stopping_patience: stop when the eval loss (computed every ``save_steps``)
            has not improved for this many evaluations in a row, and end with the best
            checkpoint's weights; needs ``eval_fraction > 0``. None: never stop early.
        early_stopping_threshold: how much the eval loss must drop to count as an
            improvement (with ``early_stopping_patience``).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float = 2e-4
    batch_size: int = 4
    gradient_accumulation: int = 1
    max_length: int = 256
    seed: int = 0
    logging_steps: int = 1
    save_steps: int = 50
    eval_fraction: float = 0.0
    merge: bool = False
    full_finetune_layers: tuple[int, ...] | None = None
    warmup_steps: int = 0
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    early_stopping_patience: int | None = None
    early_stopping_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.target_modules is not None:
            names = (
                (self.target_modules,)
                if isinstance(self.target_modules, str)
                else tuple(self.target_modules)
            )
            object.__setattr__(self, "target_modules", names)
        if self.full_finetune_layers is not None:
            object.__setattr__(self, "full_finetune_layers", tuple(self.full_finetune_layers))
        self._validate()

    def _validate(self) -> None:
        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")

        def number(name: str, low: float, high: float | None, low_open: bool) -> None:
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and (value > low if low_open else value >= low)
            ok = ok and (high is None or value < high)
            if not ok:
                bound = f"> {low}" if low_open else f">= {low}"
                upper = f" and < {high}" if high is not None else ""
                raise SpecError(f"{name} must be a finite number {bound}{upper}, got {value!r}")

        for name, minimum in (
            ("rank", 1),
            ("batch_size", 1),
            ("gradient_accumulation", 1),
            ("max_length", 2),
            ("seed", 0),
            ("logging_steps", 1),
            ("save_steps", 1),
            ("warmup_steps", 0),
        ):
            integer(name, minimum)
        if self.max_steps is not None:
            integer("max_steps", 1)
        number("alpha", 0.0, None, low_open=True)
        number("dropout", 0.0, 1.0, low_open=False)
        number("epochs", 0.0, None, low_open=True)
        number("learning_rate", 0.0, None, low_open=True)
        number("eval_fraction", 0.0, 1.0, low_open=False)
        number("weight_decay", 0.0, None, low_open=False)
        number("early_stopping_threshold", 0.0, None, low_open=False)
        if self.early_stopping_patience is not None:
            integer("early_stopping_patience", 1)
            if self.eval_fraction <= 0:
                raise SpecError(
                    f"early_stopping_patience={self.early_stopping_patience} needs "
                    f"eval_fraction > 0, got {self.eval_fraction!r}"
                )
        if self.lr_scheduler not in SCHEDULERS:
            raise SpecError(
                f"lr_scheduler {self.lr_scheduler!r} is not one of {', '.join(SCHEDULERS)}"
            )
        if self.target_modules is not None:
            if not self.target_modules:
                raise SpecError("target_modules is empty; give module names or None (auto)")
            for name in self.target_modules:
                if not isinstance(name, str) or not name.strip():
                    raise SpecError(f"target module {name!r} is not a module name")
        if self.full_finetune_layers is not None:
            if not self.full_finetune_layers:
                raise SpecError("full_finetune_layers is empty; give layer indices or None")
            for layer in self.full_finetune_layers:
                if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                    raise SpecError(f"full_finetune_layers: {layer!r} is not a layer index >= 0")

    @property
    def method(self) -> str:
        """``"lora"`` or ``"layers"`` (full fine-tune of selected layers)."""
        return "lora" if self.full_finetune_layers is None else "layers"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in the provenance file)."""
        record = asdict(self)
        for key in ("target_modules", "full_finetune_layers"):
            if record[key] is not None:
                record[key] = list(record[key])
        return record


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


# --------------------------------------------------------------------------- trainer


class SteerlabTrainer(Trainer):
    """A :class:`transformers.Trainer` whose loss subclasses can extend and log by parts.

    The loss is the token cross-entropy (transformers' own, on the ``labels``) plus the
    terms returned by :meth:`extra_losses`. The forward pass runs inside
    :meth:`forward_context`, whose value (e.g. activations captured by hooks) is passed to
    :meth:`extra_losses`. While training, each extra term and the cross-entropy (as
    ``ce_loss``) are averaged over the steps since the last log and logged next to ``loss``.
    Subclasses may also call :meth:`log_component` for any other value.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._component_sums: dict[str, torch.Tensor] = {}
        self._component_counts: dict[str, int] = {}

    def forward_context(
        self, model: nn.Module, inputs: Mapping[str, Any]
    ) -> contextlib.AbstractContextManager[Any]:
        """Context manager entered around the forward pass of :meth:`compute_loss`.

        Override to capture activations (e.g. with :func:`steerlab.hooks.hooked`); what it
        yields is passed to :meth:`extra_losses` as ``captured``. Default: nothing.
        """
        return contextlib.nullcontext()

    def extra_losses(
        self,
        model: nn.Module,
        inputs: Mapping[str, Any],
        outputs: Any,
        captured: Any,
    ) -> dict[str, torch.Tensor]:
        """Weighted loss terms added to the cross-entropy, by name (default: none).

        Each term should be a scalar mean over the batch (like a per-batch loss); it is
        scaled for gradient accumulation the way the cross-entropy is.

        Args:
            model: the (possibly wrapped) model being trained.
            inputs: the batch (``input_ids``, ``attention_mask``, ``labels``).
            outputs: the model's outputs for the batch.
            captured: what :meth:`forward_context` yielded.
        """
        return {}

    def log_component(self, name: str, value: torch.Tensor | float) -> None:
        """Accumulate a value to log (averaged) with the next training loss."""
        tensor = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(value)
        tensor = tensor.mean()
        previous = self._component_sums.get(name)
        if previous is not None:
            tensor = previous + tensor.to(previous.device)
        self._component_sums[name] = tensor
        self._component_counts[name] = self._component_counts.get(name, 0) + 1

    def _loss_scaled_for_accumulation(self, num_items_in_batch: Any) -> bool:
        scaled = getattr(self, "loss_is_scaled_for_ga", None)
        if scaled is not None:
            return bool(scaled)
        return bool(
            (getattr(self, "model_accepts_loss_kwargs", False) and num_items_in_batch is not None)
            or getattr(self, "compute_loss_func", None) is not None
        )

    def accumulation_divisor(self, num_items_in_batch: Any) -> int:
        """What a per-batch loss term must be divided by before it joins the loss.

        When the cross-entropy is normalised over the whole accumulated batch (the Trainer
        then does not divide the loss by the accumulation steps), a per-batch mean must be
        divided by the number of accumulated forward passes itself; otherwise by 1 (the
        Trainer divides the sum).
        """
        if not self._loss_scaled_for_accumulation(num_items_in_batch):
            return 1
        return int(
            getattr(
                self,
                "current_gradient_accumulation_steps",
                self.args.gradient_accumulation_steps,
            )
            or 1
        )

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Cross-entropy on the labels plus :meth:`extra_losses`; logs the parts."""
        with self.forward_context(model, inputs) as captured:
            loss, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
        extras = self.extra_losses(model, inputs, outputs, captured)
        if extras:
            # When the cross-entropy is normalised over the whole accumulated batch, the
            # Trainer does not divide by the accumulation steps: do it for per-batch terms.
            steps = self.accumulation_divisor(num_items_in_batch)
            if model.training:
                self.log_component("ce_loss", loss.detach() * steps)
            for name, term in extras.items():
                if model.training:
                    self.log_component(name, term)
                loss = loss + term / steps
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged components to training logs, then log as usual."""
        if "loss" in logs and self._component_sums:
            for name in sorted(self._component_sums):
                mean = self._component_sums[name] / self._component_counts[name]
                if self.accelerator.num_processes > 1:
                    mean = self.accelerator.reduce(mean.to(self.args.device), reduction="mean")
                logs[name] = round(float(mean.item()), 6)
            self._component_sums.clear()
            self._component_counts.clear()
        super().log(logs, start_time)


def _log_rows(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # Keys in one canonical order (step first, then sorted): a row logged live and the same
    # row restored from a checkpoint's trainer_state.json (saved with sorted keys) must be
    # written identically, so a resumed run's log equals an uninterrupted run's.
    rows = []
    for entry in history:
        if "loss" in entry or "eval_loss" in entry:
            row = {"step": int(entry.get("step", 0))}
            row.update({k: entry[k] for k in sorted(entry) if k != "step"})
            rows.append(row)
    return rows


class LossLogCallback(TrainerCallback):
    """Writes ``loss_log.jsonl``: one row per logged training step (and per evaluation).

    At the start of training the file is rewritten from the trainer state (restored from the
    checkpoint when resuming, so steps never repeat); each later log appends a row.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        """Rewrite the log from the (restored) history."""
        if state.is_world_process_zero:
            write_loss_log(self.path, state.log_history)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Append the new row."""
        if not state.is_world_process_zero or not state.log_history:
            return
        rows = _log_rows(state.log_history[-1:])
        if rows:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(rows[0]) + "\n")


def write_loss_log(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write the loss log atomically from a Trainer's ``log_history``."""
    with atomic_write(path) as handle:
        for row in _log_rows(history):
            handle.write(json.dumps(row) + "\n")


# --------------------------------------------------------------------------- model setup


def _adaptable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear | Conv1D)


def linear_module_names(model: nn.Module, layers_path: str | None = None) -> tuple[str, ...]:
    """Leaf names of the linear projections inside the decoder blocks, sorted.

    E.g. ``q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`` for llama,
    ``c_attn, c_proj, c_fc`` for gpt2, ``query_key_value, dense, dense_h_to_4h,
    dense_4h_to_h`` for gpt_neox. Output heads and MoE routers are left out.
    """
    layer_map = find_layers(model, layers_path)
    prefix = layer_map.path + "."
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if name.startswith(prefix) and _adaptable(module)
    }
    names -= _EXCLUDED_TARGETS
    if not names:
        raise SpecError(f"no linear projections found under {layer_map.path}; pass target_modules")
    return tuple(sorted(names))


def _check_target_modules(model: nn.Module, names: Sequence[str]) -> None:
    leaves = {
        name.rsplit(".", 1)[-1]: module
        for name, module in model.named_modules()
        if name and _adaptable(module)
    }
    for target in names:
        if target not in leaves:
            available = ", ".join(sorted(set(leaves) - {"lm_head"})) or "none"
            raise SpecError(
                f"target module {target!r} is not a linear module of this model; "
                f"available: {available}"
            )


def base_model_id(model: nn.Module) -> str:
    """The id a fine-tune should record as its base: ``"default"`` for the embedded model."""
    config = getattr(model, "config", None)
    name = str(getattr(config, "_name_or_path", "") or "")
    if name:
        path = Path(name)
        with contextlib.suppress(OSError):
            if path.parent.resolve() == (cache_dir() / "models").resolve() and path.name.startswith(
                "smollm2-135m-instruct-"
            ):
                return DEFAULT_MODEL
    model_id = getattr(config, "steerlab_model_id", None)
    return str(model_id or name or "unknown")


def prepare_model(
    model: nn.Module,
    config: FinetuneConfig,
    base_model: str,
    layers_path: str | None = None,
) -> tuple[nn.Module, tuple[str, ...], tuple[int, ...]]:
    """Wrap ``model`` for training: a LoRA ``PeftModel``, or freeze all but some layers.

    LoRA layers are injected into ``model`` in place (as peft does); B is zero-initialised,
    so the returned model computes exactly what ``model`` did until it is trained.

    Args:
        model: the base model.
        config: the fine-tune settings.
        base_model: id recorded as ``base_model_name_or_path`` in the adapter config.
        layers_path: dotted path of the decoder blocks, if not found automatically.

    Returns:
        ``(trainable model, LoRA target modules, trained layers)``.

    Raises:
        SpecError: for target modules the model lacks.
        LayerError: for layers out of range.
    """
    if getattr(model, "peft_config", None):
        raise SpecError(
            "the model already carries peft adapters (an earlier fine-tune changed it in "
            "place); load a fresh base model, or load the run folder to tune it further"
        )
    if config.full_finetune_layers is not None:
        layer_map = find_layers(model, layers_path)
        layers = layer_map.resolve(list(config.full_finetune_layers))
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for index in layers:
            for parameter in layer_map.blocks[index].parameters():
                parameter.requires_grad_(True)
        return model, (), layers

    from peft import LoraConfig, get_peft_model

    targets = config.target_modules or linear_module_names(model, layers_path)
    _check_target_modules(model, targets)
    conv1d = any(
        isinstance(module, Conv1D) and name.rsplit(".", 1)[-1] in targets
        for name, module in model.named_modules()
    )
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,  # type: ignore[arg-type]  # peft: any number
        lora_dropout=config.dropout,
        target_modules=list(targets),
        fan_in_fan_out=conv1d,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with peft_wrapping():
        peft_model = get_peft_model(model, lora)
    for adapter_config in peft_model.peft_config.values():
        adapter_config.base_model_name_or_path = base_model
    # peft's default save_embedding_layers="auto" looks the base id up on the Hub (a network
    # call, and a warning offline); steerlab never resizes or trains embeddings.
    peft_model.__dict__["save_pretrained"] = functools.partial(
        peft_model.save_pretrained, save_embedding_layers=False
    )
    return peft_model, tuple(targets), ()


def training_arguments(
    config: FinetuneConfig,
    output_dir: Path,
    *,
    progress: bool = True,
    evaluate: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> TrainingArguments:
    """The ``TrainingArguments`` of a fine-tune (``overrides`` win, e.g. ``bf16=True``)."""
    accelerator = torch.cuda.is_available() or (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    )
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation,
        "learning_rate": config.learning_rate,
        "num_train_epochs": float(config.epochs),
        "max_steps": config.max_steps if config.max_steps is not None else -1,
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": 2,
        "seed": config.seed,
        "report_to": [],
        "use_cpu": not accelerator,
        "remove_unused_columns": False,
        "dataloader_pin_memory": torch.cuda.is_available(),
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay,
        "eval_strategy": "steps" if evaluate else "no",
    }
    if evaluate:
        kwargs["eval_steps"] = config.save_steps
        if config.early_stopping_patience is not None:
            kwargs["load_best_model_at_end"] = True
            kwargs["metric_for_best_model"] = "eval_loss"
            kwargs["greater_is_better"] = False
    if not progress:
        kwargs["disable_tqdm"] = True
    kwargs.update(overrides or {})
    return TrainingArguments(**kwargs)


# --------------------------------------------------------------------------- run folder


def _complete_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` is a whole checkpoint: the Trainer writes ``trainer_state.json``
    last, and not atomically, so a process killed while writing it leaves it cut short."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(state, dict)


def last_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The complete ``checkpoint-N`` folder with the highest N in ``output_dir``, if any.

    A checkpoint that a killed process left half-written is skipped (training resumes from
    the one before, and the Trainer writes that step's checkpoint again).
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for child in folder.iterdir():
        suffix = child.name[len(CHECKPOINT_PREFIX) :]
        if child.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() and child.is_dir():
            found.append((int(suffix), child))
    for _, child in sorted(found, reverse=True):
        if _complete_checkpoint(child):
            return child
    return None


def _checkpoints(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and child.name.startswith(CHECKPOINT_PREFIX):
                yield child


def _read_provenance(folder: Path) -> dict[str, Any] | None:
    path = folder / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


_FINGERPRINT_KEYS = (
    "kind",
    "method",
    "base_model",
    "data_sha256",
    "target_modules",
    "trained_layers",
    "rank",
    "alpha",
    "max_length",
)


# Record fields whose dict value (when present) is part of the fingerprint, key by key.
_FINGERPRINT_SECTIONS = ("representation",)


def _fingerprint(record: Mapping[str, Any]) -> dict[str, Any]:
    config = record.get("config") or {}
    out = {key: record.get(key) for key in _FINGERPRINT_KEYS[:6]}
    out.update({key: config.get(key) for key in _FINGERPRINT_KEYS[6:]})
    if out.get("method") == "layers":
        out.pop("rank")
        out.pop("alpha")
    # Sections a feature adds (e.g. representation tuning's settings and vector hash);
    # runs recorded without them compare on the keys above only.
    for section in _FINGERPRINT_SECTIONS:
        value = record.get(section)
        if isinstance(value, Mapping):
            out.update({f"{section}.{key}": item for key, item in value.items()})
    return out


def _check_output_dir(folder: Path) -> None:
    if (folder / "config.json").is_file() and not (folder / PROVENANCE_FILE).is_file():
        raise SpecError(
            f"{folder}: holds a model checkpoint that is not a steerlab fine-tune; "
            "choose another output folder"
        )


def _check_resumable(folder: Path, record: Mapping[str, Any]) -> None:
    previous = _read_provenance(folder)
    if previous is None:
        return
    old, new = _fingerprint(previous), _fingerprint(record)
    for key, value in new.items():
        if key in old and old[key] != value:
            raise SpecError(
                f"{folder}: holds a run with another {key} ({old[key]!r}, now {value!r}); "
                "use another output folder or resume=False"
            )


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
    if tmp is None:
        return model, (folder if lora else None), None
    try:
        stale = _MODEL_FILES if lora else _ADAPTER_FILES
        for name in stale:
            (folder / name).unlink(missing_ok=True)
        marker = ("adapter_config.json",) if lora else ("config.json",)
        _move_into(tmp, folder, last=marker, skip=("training_args.bin", "README.md"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    merged_dir: Path | None = None
    if lora and config.merge:
        unwrapped = trainer.accelerator.unwrap_model(model)
        merged = unwrapped.merge_and_unload()
        tmp_merged = Path(tempfile.mkdtemp(prefix=f".{MERGED_DIR}.", dir=folder))
        try:
            merged.save_pretrained(tmp_merged)
            tokenizer.save_pretrained(tmp_merged)
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


def _as_chats(chats: Sequence[Sequence[Mapping[str, str]]] | str | os.PathLike[str]) -> list[Chat]:
    if isinstance(chats, str | os.PathLike):
        return load_chats(chats)
    out = [validate_messages(list(chat), f"chat {i}") for i, chat in enumerate(chats)]
    if not out:
        raise DataError("no chats to train on")
    return out


def _split(chats: list[Chat], fraction: float, seed: int) -> tuple[list[Chat], list[Chat]]:
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
    selected layers' weights are trained. Run it under ``accelerate launch`` for several
    GPUs, DeepSpeed or FSDP; nothing changes here.

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
    train_chats, eval_chats = _split(all_chats, config.eval_fraction, config.seed)
    train_data = ChatDataset(tokenizer, train_chats, config.max_length)
    eval_data = ChatDataset(tokenizer, eval_chats, config.max_length) if eval_chats else None
    collator = collator_for(tokenizer)

    folder.mkdir(parents=True, exist_ok=True)
    _check_output_dir(folder)
    remove_stale_temporaries(folder, (".final.", f".{MERGED_DIR}."))
    checkpoint = last_checkpoint(folder) if resume else None
    if not resume:
        for old in _checkpoints(folder):
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
        _check_resumable(folder, record)
        record["resumed_from"] = checkpoint.name

    args = training_arguments(
        config, folder, progress=progress, evaluate=eval_data is not None, overrides=training_args
    )
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
    if not progress:
        trainer.remove_callback(PrinterCallback)
    provenance = folder / PROVENANCE_FILE
    if trainer.is_world_process_zero():
        _write_json(provenance, record)

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
    train_rows = [row for row in _log_rows(history) if "loss" in row]
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
        _write_json(provenance, record)
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


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    with atomic_write(path) as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_loss_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``loss_log.jsonl`` (a run folder's path works too)."""
    source = Path(path)
    if source.is_dir():
        source = source / LOSS_LOG_FILE
    rows = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows
