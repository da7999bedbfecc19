"""Folding steering into a model's weights: a plain checkpoint that behaves like the steered
model, loadable with no steerlab code (transformers, vLLM, llama.cpp's converter).

Two operators fold exactly, at every position:

* ``add`` at layer L: the block's output is ``mid + MLP(...) + c·v``, so ``c·v`` becomes the
  bias of block L's MLP output projection (Llama's ``down_proj``). Where the projection has no
  bias, the config switch that gives it one (Llama's ``mlp_bias``) is set, every other bias the
  switch creates is written as explicit zeros, and the saved folder is checked to load back
  with the same keys (a config that drops the switch would silently drop the bias).
* ``ablate`` (one direction û, usually c = 1): every matrix that writes to the residual stream
  (embeddings, attention and MLP output projections, MoE experts, and their biases) is
  orthogonalised to û, see :mod:`steerlab.export.residual`. This is
  ``steer(..., operator="ablate", sites="everywhere")``, stronger than ablating block
  outputs. Tied embeddings are untied first: the output head keeps the original rows.

What cannot be folded is refused with one line: ``clamp`` (depends on each hidden state),
per-row coefficients, positions other than ``all``, architectures that normalise sub-layer
outputs before the residual add (Gemma 2/3, OLMo 2), and ``add`` on architectures whose MLP
output has no bias and no switch for one (Mistral, Qwen 2/3, Gemma, Phi-3, OLMo, MoE).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM

from steerlab.errors import SpecError
from steerlab.export.residual import find_writers, project_out
from steerlab.hooks import hook_count
from steerlab.layers import (
    LayerMap,
    find_layers,
    find_residual_modules,
    parse_layers,
    residual_layout,
)
from steerlab.models import model_identity, text_config, untie_embeddings
from steerlab.models.devices import offloaded_parameters
from steerlab.provenance import git_revision, library_version, sha256_of_file, utc_now
from steerlab.steer import SteerSpec, coefficient_tensor, plan_layers, warn_for_plan
from steerlab.vector import SteeringVector

FOLD_FORMAT = "steerlab.fold/1"
RECORD_ATTRIBUTE = "steerlab_fold"
"""The attribute of a folded model holding its provenance (written as ``steerlab_fold.json``)."""
_UNSET: Any = object()


def fold_spec(
    spec: SteerSpec | None = None,
    *,
    coefficient: float | None = None,
    layers: Any = None,
    operator: str | None = None,
    scale: str | None = None,
) -> SteerSpec:
    """The :class:`SteerSpec` to fold: ``spec``, or one made of the keyword arguments (as
    :func:`steerlab.steer` takes them), checked for what a checkpoint can hold.

    ``ablate`` is always folded everywhere (``sites="everywhere"``); its coefficient defaults
    to 1.

    Raises:
        SpecError: both ``spec`` and keywords, or a spec that cannot be folded (one line
            saying why).
    """
    keywords = {"coefficient": coefficient, "layers": layers, "operator": operator, "scale": scale}
    given = {key: value for key, value in keywords.items() if value is not None}
    if spec is not None and given:
        raise SpecError(f"give a SteerSpec or keyword arguments, not both ({', '.join(given)})")
    if spec is None:
        if "coefficient" not in given and given.get("operator") != "ablate":
            raise SpecError("give the coefficient to fold (operator 'ablate' defaults to 1)")
        spec = SteerSpec(**given)
    if spec.operator == "clamp":
        raise SpecError(
            "clamp sets the component along the direction to a constant, which depends on "
            "each hidden state: no fixed weights do that; fold 'add' or 'ablate'"
        )
    if not isinstance(spec.coefficient, float):
        raise SpecError(
            "per-row coefficients steer each batch row differently, but a checkpoint has one "
            "set of weights: give one coefficient"
        )
    if spec.positions != "all":
        raise SpecError(
            f"positions={spec.positions!r} steers some tokens only, but weights act on every "
            "token: fold with positions='all'"
        )
    if spec.operator == "ablate" and spec.sites != "everywhere":
        spec = dataclasses.replace(spec, sites="everywhere")
    return spec


def fold(
    model: nn.Module,
    vector: SteeringVector,
    spec: SteerSpec | None = None,
    *,
    coefficient: float | None = None,
    layers: Any = None,
    operator: str | None = None,
    scale: str | None = None,
    layers_path: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    tokenizer: Any = None,
    vector_file: str | os.PathLike[str] | None = None,
) -> Any:
    """A copy of ``model`` with the steering folded into its weights (``model`` is untouched).

    Args:
        model: a transformers causal LM (not PEFT-wrapped, not inside ``steer``).
        vector: the steering vector.
        spec: what to fold; or give ``coefficient``, ``layers``, ``operator`` (``add`` or
            ``ablate``) and ``scale`` as :func:`steerlab.steer` takes them.
        layers_path: dotted path of the decoder block list, if it cannot be found.
        output_dir: also save the folded checkpoint there (see :func:`save_folded`).
        tokenizer: saved with the checkpoint.
        vector_file: the vector's file, whose sha256 the provenance records.

    Returns:
        The folded model (same class, eval mode); its provenance in ``.steerlab_fold``.

    Raises:
        SpecError: what cannot be folded, one line saying why (see the module docstring).
        LayerError / VectorError / ModelMismatchError: as :func:`steerlab.steer`.
    """
    from steerlab.export.checkpoint import check_new_folder, save_folded

    spec = fold_spec(spec, coefficient=coefficient, layers=layers, operator=operator, scale=scale)
    check_plain(model)
    if output_dir is not None:
        check_new_folder(Path(output_dir))
    vector.check_compatible(model_identity(model))
    layer_map = find_layers(model, layers_path)
    if spec.operator == "ablate":
        check_one_layer(vector, spec, len(layer_map))
    plan = plan_layers(vector, spec, len(layer_map))
    layout = residual_layout(model)
    model_type = str(getattr(text_config(model), "model_type", "unknown"))
    if spec.operator == "add" and layout.add_bias is None:
        raise SpecError(
            f"{model_type}: the MLP output projection has no bias and no config switch for "
            "one, so 'add' cannot be folded into a checkpoint (use 'ablate', or steer with hooks)"
        )
    warn_for_plan(plan, spec, vector, stacklevel=4)
    record = base_record(model, vector, spec, plan, vector_file)
    folded = copy.deepcopy(model)
    if spec.operator == "add":
        record.update(_fold_add(folded, layer_map_of(folded, layer_map), plan, spec))
    else:
        record.update(_fold_ablate(folded, plan[0][1], spec.coefficient, layers_path))  # type: ignore[arg-type]
    folded.eval()
    setattr(folded, RECORD_ATTRIBUTE, record)
    if output_dir is not None:
        save_folded(folded, tokenizer, output_dir)
    return folded


def base_record(
    model: nn.Module,
    vector: SteeringVector,
    spec: SteerSpec,
    plan: tuple[tuple[int, torch.Tensor, float], ...],
    vector_file: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """The provenance of a fold: what was folded, from which vector, by which steerlab."""
    record: dict[str, Any] = {
        "format": FOLD_FORMAT,
        "operator": spec.operator,
        "coefficient": spec.coefficient,
        "scale": spec.scale,
        "sites": spec.sites,
        "positions": spec.positions,
        "layers": [layer for layer, _, _ in plan],
        # scale='norm': the activation norms the coefficient was multiplied by
        "activation_norms": {str(layer): scale for layer, _, scale in plan}
        if spec.scale_by_norm
        else None,
        "model_type": str(getattr(text_config(model), "model_type", "unknown")),
        "model": dataclasses.asdict(model_identity(model)),
        "vector": {
            "sha256": vector.sha256(),
            "file": None if vector_file is None else str(vector_file),
            "file_sha256": None if vector_file is None else sha256_of_file(vector_file),
            "metadata": json.loads(vector.metadata.to_json()),
        },
        "library_version": library_version(),
        "git_revision": git_revision(),
        "created": utc_now(),
    }
    return record


def check_one_layer(vector: SteeringVector, spec: SteerSpec, num_layers: int) -> None:
    """Refuse an ablation of other than one layer's direction.

    Raises:
        SpecError: naming the number of layers selected.
        LayerError: a selection out of ``num_layers``.
    """
    chosen = vector.layers if spec.layers is None else parse_layers(spec.layers, num_layers)
    if len(chosen) != 1:
        raise SpecError(
            "ablate folds one direction into every residual write: choose the one layer "
            f"whose direction to remove (e.g. layers={chosen[-1]}), not {len(chosen)} layers"
        )


def check_plain(model: nn.Module) -> None:
    """Refuse a PEFT-wrapped model, one with hooks installed (inside ``steer``), and one whose
    device map offloaded weights (they exist only inside a forward pass: folding edits them).

    Raises:
        SpecError: one line saying which.
    """
    offloaded = offloaded_parameters(model)
    if offloaded:
        raise SpecError(
            f"{len(offloaded)} weights (e.g. {offloaded[0]}) are offloaded by the model's "
            "device map: load the model without offloading to fold it"
        )
    if hasattr(model, "peft_config"):
        raise SpecError("the model is PEFT-wrapped: merge the adapter first (merge_and_unload)")
    if hook_count(model):
        raise SpecError(
            "the model has forward hooks installed (inside a steer block?): fold the "
            "unsteered model"
        )


def layer_map_of(copy_: nn.Module, original: LayerMap) -> LayerMap:
    """The same decoder blocks in a deep copy of the model ``original`` was found in."""
    container = copy_.get_submodule(original.path)
    return LayerMap(original.path, tuple(container.children()), original.how)


@torch.no_grad()
def _fold_add(
    folded: nn.Module,
    layer_map: LayerMap,
    plan: tuple[tuple[int, torch.Tensor, float], ...],
    spec: SteerSpec,
) -> dict[str, Any]:
    layout = residual_layout(folded)
    assert layout.add_bias is not None
    switched = None
    first = layer_map.blocks[0].get_submodule(layout.add_bias)
    if getattr(first, "bias", None) is None:
        if layout.bias_switch is None:
            raise SpecError(f"{layout.add_bias} has no bias and the config no switch for one")
        switched = switch_on_bias(folded, layout.bias_switch)
    config = text_config(folded)
    multiplier = float(getattr(config, layout.bias_scale)) if layout.bias_scale else 1.0
    pushes = {}
    for layer, direction, scale in plan:
        bias = getattr(layer_map.blocks[layer].get_submodule(layout.add_bias), "bias", None)
        assert isinstance(bias, torch.Tensor)
        # The hook adds (c·scale)·v in the hidden dtype; the same product here.
        c = coefficient_tensor(spec.coefficient).to(bias.dtype)
        push = (c * scale) * direction.to(device=bias.device, dtype=bias.dtype)
        bias.add_((push / multiplier).to(bias.dtype))
        pushes[str(layer)] = float(push.norm())
    return {
        "bias_module": layout.add_bias,
        "bias_switch": switched,
        "push_norms": pushes,
    }


def switch_on_bias(model: nn.Module, switch: str) -> dict[str, Any]:
    """Set the config switch ``switch`` and give every module it adds a bias to an explicit
    zero bias, so that ``model`` is what ``from_pretrained`` builds from the new config.

    Returns:
        ``{"attribute": switch, "zero_biases": number of biases added}``.

    Raises:
        SpecError: the switched architecture differs from the model by more than biases.
    """
    configs = {id(model.config): model.config, id(text_config(model)): text_config(model)}
    for config in configs.values():
        setattr(config, switch, True)
    expected = expected_keys(model.config)
    present = model.state_dict(keep_vars=True)
    added = 0
    for name, tensor in expected.items():
        if name in present:
            continue
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner)
        weight = getattr(module, "weight", None)
        if leaf != "bias" or weight is None:
            raise SpecError(
                f"setting {switch}=True adds {name}, which is not a bias: cannot fold 'add'"
            )
        zeros = torch.zeros(tensor.shape, dtype=weight.dtype, device=weight.device)
        module.bias = nn.Parameter(zeros, requires_grad=weight.requires_grad)
        added += 1
    extra = sorted(set(model.state_dict()) - set(expected))
    if extra:
        raise SpecError(f"setting {switch}=True removes {extra[0]}: cannot fold 'add'")
    return {"attribute": switch, "zero_biases": added}


def expected_keys(config: Any) -> dict[str, torch.Tensor]:
    """The state-dict keys (meta tensors) of the model ``from_pretrained`` builds from
    ``config``."""
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return dict(skeleton.state_dict(keep_vars=True))


@torch.no_grad()
def _fold_ablate(
    folded: nn.Module, unit: torch.Tensor, coefficient: float, layers_path: str | None
) -> dict[str, Any]:
    untied = untie_embeddings(folded)
    modules = find_residual_modules(folded, layers_path)
    hidden = int(unit.shape[0])
    writers = find_writers(modules, hidden)
    for writer in writers:
        project_out(writer, unit, coefficient)
    return {
        "untied_embeddings": untied,
        "orthogonalised": [writer.name for writer in writers],
        "direction_unit": True,
    }


def fold_record(model: nn.Module) -> Mapping[str, Any]:
    """The provenance :func:`fold` attached to a folded model.

    Raises:
        SpecError: ``model`` was not made by :func:`fold`.
    """
    record = getattr(model, RECORD_ATTRIBUTE, None)
    if not isinstance(record, dict):
        raise SpecError("the model was not folded by steerlab.fold (no fold record)")
    return record
