"""Directional ablation as a rank-1 LoRA adapter (peft), for servers that switch adapters per
request (vLLM's multi-LoRA serving).

Removing the unit direction û from what a residual writer writes is a rank-1 change of its
weight (:func:`steerlab.export.residual.rank_one_factors`): ``ΔW = -c·û (ûᵀ W)`` for a
Linear (d, in), ``ΔE = -c·(E û) ûᵀ`` for the embedding table. A LoRA adapter of rank 1 with
``lora_alpha = 1`` (scaling 1) adds exactly ``B A``, on every attention output projection,
every MLP output projection and the token embeddings (peft's LoRA supports ``nn.Embedding``).
``PeftModel.from_pretrained(base, DIR)`` then equals
``steer(base, vector, operator="ablate", layers=L, sites="everywhere")``.

LoRA changes weights only: architectures whose writers have non-zero biases (GPT-2, GPT-J,
GPT-NeoX, Phi, Falcon with biases) are refused, as are writers that are not Linear or
Embedding (GPT-2's Conv1D, mixture-of-experts tensors), and the ``add`` operator (a bias, see
:func:`steerlab.export.fold.fold`). The base weights must be the very weights the adapter was
made on: ``A = ûᵀ W`` holds a copy of ``W``'s projection.

Tied embeddings (SmolLM2, Gemma, Qwen2 small models): unmerged, the adapter changes only the
input embeddings, exactly as ablation does; ``merge_and_unload`` would also change the output
head that shares them. Serve or load it unmerged (vLLM, ``PeftModel``), or untie the base's
embeddings before merging; ``steerlab_fold.json`` records ``tied_embeddings``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steerlab.errors import SpecError
from steerlab.export.checkpoint import check_new_folder, new_folder, write_record
from steerlab.export.fold import base_record, check_one_layer, check_plain, fold_spec
from steerlab.export.residual import Writer, find_writers, rank_one_factors
from steerlab.layers import find_layers, find_residual_modules
from steerlab.models import model_identity, peft_wrapping, text_config
from steerlab.steer import SteerSpec, plan_layers
from steerlab.vector import SteeringVector

ADAPTER_NAME = "default"
_KINDS = {"conv1d": "a GPT-2 Conv1D", "experts": "a mixture-of-experts weight tensor"}


def adapter_writers(model: nn.Module, hidden: int, layers_path: str | None) -> tuple[Writer, ...]:
    """The residual writers of ``model``, checked to be exactly what a LoRA adapter can change.

    Raises:
        SpecError: a writer that is not Linear/Embedding, or one with a non-zero bias.
    """
    model_type = str(getattr(text_config(model), "model_type", "unknown"))
    writers = find_writers(find_residual_modules(model, layers_path), hidden)
    for writer in writers:
        if writer.kind not in ("linear", "embedding"):
            raise SpecError(
                f"{model_type}: {writer.name} is {_KINDS[writer.kind]}, which a rank-1 LoRA "
                "adapter does not cover: fold a checkpoint instead (--format checkpoint)"
            )
        bias = writer.bias
        if bias is not None and bool(bias.detach().abs().max() > 0):
            raise SpecError(
                f"{model_type}: {writer.name} has a bias, which a LoRA adapter cannot change: "
                "fold a checkpoint instead (--format checkpoint)"
            )
    return writers


def _target_modules(model: nn.Module, writers: tuple[Writer, ...]) -> list[str]:
    """Short names (``o_proj``) when they select exactly the writers, else full names."""
    names = {writer.name for writer in writers}
    suffixes = sorted({name.rsplit(".", 1)[-1] for name in names})
    matched = {
        name for name, _ in model.named_modules() if name and name.rsplit(".", 1)[-1] in suffixes
    }
    return suffixes if matched == names else sorted(names)


def fold_adapter(
    model: Any,
    vector: SteeringVector,
    spec: SteerSpec | None = None,
    *,
    output_dir: str | os.PathLike[str],
    coefficient: float | None = None,
    layers: Any = None,
    layers_path: str | None = None,
    base_model_name_or_path: str | None = None,
    vector_file: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a rank-1 LoRA adapter folder that ablates one direction everywhere.

    Args:
        model: the base model (not modified).
        vector: the steering vector; the direction of the one selected layer is used.
        spec: an ``ablate`` :class:`SteerSpec`; or give ``coefficient`` (default 1) and
            ``layers`` (one layer).
        output_dir: a new (or empty) folder.
        layers_path: dotted path of the decoder block list, if it cannot be found.
        base_model_name_or_path: recorded in ``adapter_config.json`` (default: the path the
            model was loaded from).
        vector_file: the vector's file, whose sha256 ``steerlab_fold.json`` records.

    Returns:
        ``output_dir``, holding ``adapter_config.json``, ``adapter_model.safetensors`` and
        ``steerlab_fold.json``.

    Raises:
        SpecError: not ``ablate``, not one layer, or an architecture the adapter cannot
            cover exactly (see the module docstring); nothing is written.
    """
    if spec is None:
        spec = fold_spec(coefficient=coefficient, layers=layers, operator="ablate")
    else:
        spec = fold_spec(spec)
    if spec.operator != "ablate":
        raise SpecError(
            "a rank-1 LoRA adapter implements 'ablate' only ('add' is a bias, which LoRA "
            "cannot add): fold 'add' into a checkpoint (--format checkpoint)"
        )
    check_plain(model)
    vector.check_compatible(model_identity(model))
    layer_map = find_layers(model, layers_path)
    check_one_layer(vector, spec, len(layer_map))
    plan = plan_layers(vector, spec, len(layer_map))
    ((_, unit, _),) = plan
    writers = adapter_writers(model, int(unit.shape[0]), layers_path)
    target = Path(output_dir)
    check_new_folder(target)
    record = base_record(model, vector, spec, plan, vector_file)
    record["format"] = "steerlab.adapter/1"
    record["adapted"] = [writer.name for writer in writers]
    embeddings = model.get_input_embeddings()
    heads = model.get_output_embeddings()
    # Merging would change a tied output head with the embeddings; unmerged use is exact.
    record["tied_embeddings"] = heads is not None and heads.weight is embeddings.weight
    base = base_model_name_or_path or str(getattr(model.config, "_name_or_path", "") or "")
    with new_folder(target) as tmp:
        _save_adapter(model, writers, unit, float(spec.coefficient), base, tmp)  # type: ignore[arg-type]
        write_record(tmp, record)
    return target


@torch.no_grad()
def _save_adapter(
    model: nn.Module,
    writers: tuple[Writer, ...],
    unit: torch.Tensor,
    coefficient: float,
    base: str,
    folder: Path,
) -> None:
    """Wrap a weightless (meta-device) copy of ``model``'s architecture with peft, put the
    rank-1 factors in its LoRA layers and save the adapter alone."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(model.config)
    config = LoraConfig(
        r=1,
        lora_alpha=1,  # scaling = alpha / r = 1: the adapter adds exactly B A
        lora_dropout=0.0,
        bias="none",
        target_modules=_target_modules(model, writers),
        base_model_name_or_path=base or None,
    )
    with peft_wrapping(), warnings.catch_warnings():
        # peft warns that merging into tied embeddings would change the output head too;
        # fold_adapter records the tying in steerlab_fold.json and the docs say: do not merge.
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        wrapped = get_peft_model(skeleton, config, adapter_name=ADAPTER_NAME)
    for writer in writers:
        lora: Any = wrapped.get_submodule(f"base_model.model.{writer.name}")
        b, a = rank_one_factors(writer, unit, coefficient)
        if writer.kind == "embedding":
            lora.lora_embedding_A[ADAPTER_NAME] = nn.Parameter(a.cpu())
            lora.lora_embedding_B[ADAPTER_NAME] = nn.Parameter(b.cpu())
        else:
            lora.lora_A[ADAPTER_NAME].weight = nn.Parameter(a.cpu())
            lora.lora_B[ADAPTER_NAME].weight = nn.Parameter(b.cpu())
    wrapped.save_pretrained(str(folder), save_embedding_layers=False)
