"""Getting a model ready to train: LoRA targets, layer freezing, the TrainingArguments.

:func:`prepare_model` wraps a model for a :class:`~steerlab.tuning.FinetuneConfig`
(a peft LoRA model, or all but some decoder layers frozen); :func:`training_arguments`
translates the config into transformers' ``TrainingArguments``; :func:`base_model_id` is
what a run records as its base model.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import TrainingArguments
from transformers.pytorch_utils import Conv1D

from steerlab.errors import SpecError
from steerlab.layers import find_layers
from steerlab.models import DEFAULT_MODEL, cache_dir, peft_wrapping
from steerlab.tuning.config import FinetuneConfig

# Linear layers never adapted by default: output heads and MoE routers.
_EXCLUDED_TARGETS = frozenset({"lm_head", "embed_out", "score", "gate", "router"})


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
    """The ``TrainingArguments`` of a fine-tune (``overrides`` win, e.g. ``bf16=True``).

    ``config.batch_size`` is the global batch of a forward pass: with several processes
    accelerate splits each batch among them (``split_batches``), so each process gets
    ``batch_size / N`` examples (:func:`~steerlab.tuning.finetune` checks that it divides).
    """
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
        # batch_size is the global batch: under accelerate launch / torchrun each of N
        # processes takes its 1/N slice of the same batch a single process would see, so
        # the loss curve does not depend on N (see FinetuneConfig.batch_size).
        "accelerator_config": {"split_batches": True},
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
