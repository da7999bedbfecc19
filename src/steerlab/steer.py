"""Applying a steering vector at inference: :class:`SteerSpec` and the :func:`steer` context.

What the coefficient ``c`` is measured in (``scale``):

=========== ======================================== =================================
``scale``   the push added at a layer is             use
=========== ======================================== =================================
``vector``  ``c·v``, the vector as extracted          reproducing a recipe; the sweep's raw
``unit``    ``c·v̂``, its unit direction               the sweep's study convention (c = r_e)
``norm``    ``c·‖h‖·v̂``, a fraction of the layer's   interactive use; transfers across
            typical activation norm ``‖h‖``          layers, methods and models (0.1-0.3)
=========== ======================================== =================================

``‖h‖`` is recorded in the vector at extraction (``activation_norms``); for a vector without
it, :func:`steerlab.record.measure_activation_norms` measures it on built-in text
(:func:`steerlab.generate` does so by itself, with a notice). The old booleans
``normalize``/``scale_by_norm`` still work and are deprecated: (F, F) = ``vector``, (T, F) =
``unit``, (T, T) = ``norm``; (F, T), the raw vector times the norm, is kept for old callers.

When the pushes, each as a fraction of its layer's activation norm, add up to more than
:data:`GIBBERISH_RATIO` over the steered layers, :func:`steer` warns once
(:class:`~steerlab.errors.SteeringStrengthWarning`) with the largest layer's push and norm and
the total, and points to ``steerlab calibrate``. For one layer that is the push at that
layer; over several layers the pushes add up in the residual stream, and measurements agree
(see :data:`GIBBERISH_RATIO`).

Operators, for hidden state ``h`` at a steered layer, direction ``v`` (unit per ``scale``;
always unit for ``ablate``/``clamp``), coefficient ``c`` and scale ``s`` (the layer's typical
activation norm for ``scale="norm"``, else 1):

* ``add``:    ``h + c·s·v``
* ``ablate``: ``h - c·(h·v̂)v̂``   (c = 1 removes the whole component: directional ablation)
* ``clamp``:  ``h - (h·v̂)v̂ + c·s·v̂``  (the component along v̂ is set to c·s)

Positions: ``all`` tokens; ``prompt`` (the prompt pass only, not tokens generated later);
``generated`` (the last prompt token, whose output predicts the first generated token, and
every generated token). Works with ``model.generate`` and any KV cache (dynamic, static,
none, or one the caller passes in to continue a conversation): prompt and generated tokens
are told apart from the cache's length (found by type) and the width of each call, never
from transformers' argument names (see :class:`_PassState` and :mod:`steerlab.upstream`).
Not supported for ``prompt``/``generated``: assisted (speculative) decoding and chunked
prefill, whose several-token calls on top of a cache read as new prompt chunks.

The coefficient may be a scalar or one value per batch row, so B prompts x K coefficients
run as a single batched forward or generate.

Sites (``sites``): ``blocks`` (the default) steers the outputs of the selected decoder blocks,
steerlab's layers. ``everywhere`` (``ablate`` only) removes ONE direction, the selected
layer's, from everything that writes to the residual stream: the embeddings and the output
of every attention and MLP sub-layer of every block (see
:class:`~steerlab.layers.ResidualLayout`). The residual stream then has no component along
the direction anywhere, which is stronger than block-output ablation (a block's sub-layers
still read the component its input had) and is exactly what orthogonalising the weights does
(:func:`steerlab.export.fold`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from steerlab.errors import SpecError, SteeringStrengthWarning, VectorError
from steerlab.hooks import hooked
from steerlab.layers import LayerSelection, find_layers, find_residual_modules, parse_layers
from steerlab.models import model_identity
from steerlab.upstream import CallInfo, read_call
from steerlab.validation import check_bool, check_choice
from steerlab.vector import SteeringVector

Operator = Literal["add", "ablate", "clamp"]
Positions = Literal["all", "prompt", "generated"]
Scale = Literal["vector", "unit", "norm"]
Sites = Literal["blocks", "everywhere"]
OPERATORS: tuple[str, ...] = ("add", "ablate", "clamp")
POSITIONS: tuple[str, ...] = ("all", "prompt", "generated")
SCALES: tuple[str, ...] = ("vector", "unit", "norm")
SITES: tuple[str, ...] = ("blocks", "everywhere")
# The deprecated booleans (normalize, scale_by_norm) as a scale; "vector_norm" (raw vector
# times the activation norm) exists only for them.
_LEGACY_SCALES = {
    (False, False): "vector",
    (True, False): "unit",
    (True, True): "norm",
    (False, True): "vector_norm",
}
GIBBERISH_RATIO = 0.5
"""Total push over the steered layers, each as a fraction of its layer's activation norm,
above which :func:`steer` warns. Measured on the embedded model
(``benchmarks/gibberish_threshold.py``, BENCHMARKS.md "gibberish"): the perplexity of greedy
continuations under the unsteered model, relative to unsteered text, stays within 1.4x up to
a total of about 0.3-0.35 (layer 15 at 0.3; layers 12-18 at 0.05 each) and passes 2.3-2.5x
at 0.5-0.7 (layer 15 at 0.5; layers 12-18 at 0.1 each), then turns to gibberish (5.9x at
seven layers x 0.15, 4x at one layer x 0.75)."""


def resolve_scale(
    scale: str | None,
    normalize: bool | None,
    scale_by_norm: bool | None,
    *,
    default: str = "vector",
    stacklevel: int = 3,
) -> str:
    """The scale named by ``scale`` or by the deprecated booleans (with a DeprecationWarning).

    Raises:
        SpecError: an unknown scale, or booleans that contradict ``scale``.
    """
    if normalize is None and scale_by_norm is None:
        if scale == "vector_norm":  # what the deprecated (False, True) resolved to
            return scale
        return check_choice(default if scale is None else scale, "scale", SCALES)
    flags = (
        check_bool(bool(normalize) if normalize is None else normalize, "normalize"),
        check_bool(
            bool(scale_by_norm) if scale_by_norm is None else scale_by_norm, "scale_by_norm"
        ),
    )
    implied = _LEGACY_SCALES[flags]
    if scale is None:
        warnings.warn(
            f"normalize/scale_by_norm are deprecated: use scale={implied!r}"
            if implied != "vector_norm"
            else "normalize=False with scale_by_norm=True is deprecated: use scale='norm'",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return implied
    if scale != implied:
        raise SpecError(
            f"scale={scale!r} contradicts normalize={flags[0]}, scale_by_norm={flags[1]} "
            "(deprecated): give scale alone"
        )
    return scale


Coefficient = float | Sequence[float] | torch.Tensor


def coefficient_tensor(coefficient: Coefficient) -> torch.Tensor:
    """Validate a coefficient (scalar or one per row) as a float64 1-D tensor.

    Raises:
        SpecError: for a non-finite, empty or non-numeric coefficient.
    """
    try:
        values = torch.as_tensor(coefficient, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise SpecError(f"coefficient {coefficient!r} is not a number or list of numbers") from None
    if values.numel() == 0:
        raise SpecError("coefficient list is empty")
    bad = values[~torch.isfinite(values)]
    if bad.numel():
        raise SpecError(f"coefficient {float(bad[0])} is not finite")
    return values


@dataclass(frozen=True)
class SteerSpec:
    """How to apply a vector. Validated on construction.

    Attributes:
        coefficient: scalar, or one value per batch row (a tuple).
        layers: layer selection (``None`` = every layer the vector has).
        operator: ``add``, ``ablate`` or ``clamp``.
        normalize: deprecated (see ``scale``); after construction, whether the direction is
            made unit.
        scale_by_norm: deprecated (see ``scale``); after construction, whether the
            coefficient is multiplied by the layer's activation norm.
        positions: ``all``, ``prompt`` or ``generated``.
        scale: what the coefficient is measured in: ``vector``, ``unit`` or ``norm`` (see
            the module docstring); default ``vector``.
        sites: ``blocks`` (the selected blocks' outputs) or ``everywhere`` (``ablate`` only:
            one layer's direction removed from every residual write, see the module
            docstring).
    """

    coefficient: float | tuple[float, ...] = 1.0
    layers: str | int | tuple[int, ...] | None = None
    operator: Operator = "add"
    normalize: bool | None = None
    scale_by_norm: bool | None = None
    positions: Positions = "all"
    scale: str | None = None
    sites: Sites = "blocks"

    def __post_init__(self) -> None:
        values = coefficient_tensor(self.coefficient)
        # A scalar stays a scalar; a list (even of one) stays per-row.
        per_row = not isinstance(self.coefficient, int | float)
        value = tuple(values.tolist()) if per_row else float(values[0])
        object.__setattr__(self, "coefficient", value)
        if isinstance(self.layers, list | range):
            object.__setattr__(self, "layers", tuple(self.layers))
        check_choice(self.operator, "operator", OPERATORS)
        check_choice(self.positions, "positions", POSITIONS)
        check_choice(self.sites, "sites", SITES)
        if self.sites == "everywhere" and self.operator != "ablate":
            raise SpecError(
                f"sites='everywhere' removes a direction from every residual write: it takes "
                f"operator='ablate', not {self.operator!r}"
            )
        scale = resolve_scale(self.scale, self.normalize, self.scale_by_norm, stacklevel=4)
        object.__setattr__(self, "scale", scale)
        # The booleans stay readable, consistent with the scale, for code written before it.
        object.__setattr__(self, "normalize", scale in ("unit", "norm"))
        object.__setattr__(self, "scale_by_norm", scale in ("norm", "vector_norm"))


def _unit(v: torch.Tensor, layer: int) -> torch.Tensor:
    norm = v.norm()
    if float(norm) == 0.0:
        raise VectorError(f"layer {layer}: the direction is zero; it has no unit vector")
    return v / norm


class _PassState:
    """Which token positions of the current forward call are prompt and which generated.

    Decided once per call of the decoder stack, from the call's :class:`CallInfo` (the cache
    found by type, the 2-D padding mask and the input ids, see :mod:`steerlab.upstream`) and
    the width of the hidden states, never from transformers' private argument names:

    * one token per row on top of a non-empty cache: a decode step (generated);
    * the previous uncached call's rows plus one token each: a decode step of
      ``generate(use_cache=False)``, which re-feeds the whole sequence; positions before
      the prompt's width are prompt tokens, the rest generated;
    * anything else: a prompt pass (a new prompt, or a new chunk on top of a cache the
      caller passed in to continue a conversation). Each row's last real token is read
      from a 2-D padding mask when there is one, else it is the last column (left
      padding, which ``generate`` uses).
    """

    def __init__(self, positions: str) -> None:
        self.positions = positions
        self.call: CallInfo | None = None
        self._mask: torch.Tensor | Literal[False] | None = None
        self._decided = False
        self._prompt_width = 0  # tokens (cached + new) at the end of the last prompt pass
        self._prompt_last: torch.Tensor | None = None  # (batch,) absolute last prompt token
        self._uncached_ids: torch.Tensor | None = None  # input ids of the last uncached call

    def observe(self, call: CallInfo) -> None:
        """Start a new forward call of the decoder stack."""
        self.call = call
        self._decided = False

    def _refeeds_previous(self, call: CallInfo, batch: int, seq: int) -> bool:
        previous, ids = self._uncached_ids, call.input_ids
        if call.cached or previous is None or ids is None or self._prompt_last is None:
            return False
        if ids.shape != (batch, seq) or previous.shape[1] + 1 != seq:
            return False
        if self._prompt_last.shape[0] != batch:
            return False
        # Every row continues one of the previous rows (beam search may reorder them).
        prefix = ids[:, None, :-1].to(previous.device)
        return bool((prefix == previous[None]).all(-1).any(-1).all())

    def _last_in_chunk(self, call: CallInfo, batch: int, seq: int) -> torch.Tensor:
        mask = call.attention_mask
        if mask is not None and mask.shape[0] != batch and batch % mask.shape[0] == 0:
            # Rows repeated in place after the stack saw the mask (generate's
            # num_return_sequences, or hooks.fanned_out sharing the first blocks).
            mask = mask.repeat_interleave(batch // mask.shape[0], dim=0)
        if (
            mask is not None
            and mask.shape[0] == batch
            and mask.shape[1] in (seq, call.cached + seq)
        ):
            chunk = mask[:, -seq:].to(torch.long).cpu()
            # Index of each row's last real token: right padding puts it before the pads.
            return (seq - 1) - chunk.flip(-1).argmax(dim=-1)
        return torch.full((batch,), seq - 1, dtype=torch.long)

    def _decide(self, batch: int, seq: int) -> torch.Tensor | Literal[False] | None:
        call = self.call or CallInfo(cached=0, has_cache=False, attention_mask=None, input_ids=None)
        if call.cached > 0 and seq == 1:
            return False if self.positions == "prompt" else None
        if self._refeeds_previous(call, batch, seq):
            assert self._prompt_last is not None
            self._uncached_ids = call.input_ids
            index = torch.arange(seq)
            prompt = (index < self._prompt_width).expand(batch, seq)
            if self.positions == "prompt":
                return prompt
            return ~prompt | (index[None, :] == self._prompt_last[:, None])
        last = self._last_in_chunk(call, batch, seq)
        self._prompt_width = call.cached + seq
        self._prompt_last = call.cached + last
        self._uncached_ids = call.input_ids if not call.has_cache and not call.cached else None
        if self.positions == "prompt":
            return None
        return torch.arange(seq)[None, :] == last[:, None]

    def position_mask(self, hidden: torch.Tensor) -> torch.Tensor | Literal[False] | None:
        """``None`` = steer every position, ``False`` = none, else a (batch, seq, 1) mask."""
        if self.positions == "all":
            return None
        if not self._decided:
            self._mask = self._decide(hidden.shape[0], hidden.shape[1])
            self._decided = True
        if isinstance(self._mask, torch.Tensor):
            return self._mask.to(device=hidden.device, dtype=hidden.dtype).unsqueeze(-1)
        return self._mask


def _row_coefficients(values: torch.Tensor, batch: int) -> torch.Tensor:
    if values.numel() == 1 or values.numel() == batch:
        return values
    if batch % values.numel() == 0:
        # generate(num_return_sequences=n) repeats each row n times in place.
        return values.repeat_interleave(batch // values.numel())
    raise SpecError(
        f"{values.numel()} per-row coefficients for a batch of {batch} rows; "
        "give one coefficient or one per row"
    )


def _layer_hook(
    direction: torch.Tensor,
    scale: float,
    operator: str,
    coefficients: torch.Tensor,
    state: _PassState,
) -> Any:
    def hook(hidden: torch.Tensor) -> torch.Tensor | None:
        mask = state.position_mask(hidden)
        if mask is False:
            return None
        rows = _row_coefficients(coefficients, hidden.shape[0])
        c = rows.to(device=hidden.device, dtype=hidden.dtype).view(-1, 1, 1)
        v = direction.to(device=hidden.device, dtype=hidden.dtype)
        if operator == "add":
            delta = (c * scale) * v
        else:
            along = hidden @ v  # (batch, seq) component along the unit direction
            if operator == "ablate":
                delta = -(c * along.unsqueeze(-1)) * v
            else:  # clamp
                delta = ((c * scale) - along.unsqueeze(-1)) * v
        if mask is not None:
            delta = delta * mask
        return hidden + delta

    return hook


@contextmanager
def apply_spec(
    model: nn.Module,
    vector: SteeringVector,
    spec: SteerSpec,
    *,
    layers_path: str | None = None,
) -> Iterator[SteerSpec]:
    """Steer ``model`` with ``vector`` as ``spec`` says, inside a ``with`` block.

    Raises:
        ModelMismatchError: the vector was made on a different kind of model.
        LayerError: a layer that the model or the vector does not have.
        SpecError / VectorError: an invalid coefficient or a zero direction.
    """
    vector.check_compatible(model_identity(model))
    layer_map = find_layers(model, layers_path)
    plan = plan_layers(vector, spec, len(layer_map))
    coefficients = coefficient_tensor(spec.coefficient)
    state = _PassState(spec.positions)
    hooks = []
    if spec.sites == "everywhere":
        writes = find_residual_modules(model, layers_path)
        ((_, direction, _),) = plan
        for _name, module in writes.embeddings + writes.sublayers:
            hooks.append((module, _layer_hook(direction, 1.0, "ablate", coefficients, state)))
    for layer, direction, scale in plan if spec.sites == "blocks" else ():
        hooks.append(
            (
                layer_map.blocks[layer],
                _layer_hook(direction, scale, spec.operator, coefficients, state),
            )
        )
    warn_for_plan(plan, spec, vector)
    # The stack module (parent of the block list) sees input ids, mask and cache each call.
    parent_path = layer_map.path.rsplit(".", 1)[0] if "." in layer_map.path else ""
    stack = model.get_submodule(parent_path) if parent_path else model
    forward = getattr(stack, "forward", None)

    def observe(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        state.observe(read_call(args, kwargs, forward))

    with hooked(outputs=hooks, inputs=[(stack, observe)]):
        yield spec


def plan_layers(
    vector: SteeringVector, spec: SteerSpec, num_layers: int
) -> tuple[tuple[int, torch.Tensor, float], ...]:
    """What ``spec`` applies at each layer: ``(layer, direction, scale)`` in layer order.

    ``direction`` is the vector's (unit when ``spec.normalize`` or for ``ablate``/``clamp``),
    ``scale`` the layer's activation norm for ``scale="norm"``, else 1; an ``add`` pushes
    ``coefficient·scale·direction``.

    Raises:
        LayerError: a layer the model does not have.
        VectorError: a layer the vector lacks, a zero direction, a missing activation norm.
        SpecError: ``sites="everywhere"`` with other than one layer.
    """
    layers = vector.layers if spec.layers is None else parse_layers(spec.layers, num_layers)
    missing = [layer for layer in layers if layer not in vector.directions]
    if missing:
        raise VectorError(
            f"the vector has no direction for layer {missing[0]} "
            f"(it has layers {', '.join(map(str, vector.layers))})"
        )
    if spec.sites == "everywhere" and len(layers) != 1:
        raise SpecError(
            f"sites='everywhere' removes one direction from every residual write: choose the "
            f"one layer whose direction to use (layers=L), not {len(layers)} layers"
        )
    norms = vector.activation_norms or {}
    if spec.scale_by_norm:
        lacking = [layer for layer in layers if layer not in norms]
        if lacking:
            raise VectorError(
                f"scale='norm' needs the activation norm of layer {lacking[0]}, which the "
                "vector does not record: vector.with_activation_norms("
                "steerlab.record.measure_activation_norms(model, tokenizer))"
            )
    plan = []
    for layer in layers:
        raw = vector[layer]
        unit_needed = spec.normalize or spec.operator in ("ablate", "clamp")
        direction = _unit(raw, layer) if unit_needed else raw
        scale = norms[layer] if spec.scale_by_norm else 1.0
        if not math.isfinite(scale):
            raise VectorError(f"layer {layer}: activation norm is not finite")
        plan.append((layer, direction, scale))
    return tuple(plan)


def warn_for_plan(
    plan: Sequence[tuple[int, torch.Tensor, float]],
    spec: SteerSpec,
    vector: SteeringVector,
    *,
    stacklevel: int = 5,
) -> None:
    """:func:`warn_if_too_strong` for the pushes of a :func:`plan_layers` plan.

    Args:
        stacklevel: as for :func:`warnings.warn`, counted inside :func:`warn_if_too_strong`
            (5: the ``with steer(...)`` line, through :func:`apply_spec` and contextlib).
    """
    if spec.operator == "ablate":
        return
    peak = float(coefficient_tensor(spec.coefficient).abs().max())
    pushes = {layer: peak * scale * float(direction.norm()) for layer, direction, scale in plan}
    warn_if_too_strong(pushes, vector.activation_norms or {}, stacklevel=stacklevel)


def warn_if_too_strong(
    pushes: Mapping[int, float], norms: Mapping[int, float], *, stacklevel: int = 4
) -> None:
    """Warn once if the pushes, as fractions of their layers' activation norms, add up to
    more than :data:`GIBBERISH_RATIO`.

    Args:
        pushes: ``{layer: length of the vector added (or clamped to) there}``.
        norms: ``{layer: typical activation norm}``; layers without one are not checked.
        stacklevel: passed to :func:`warnings.warn` (4: the caller of ``with steer(...)``).
    """
    ratios = {
        layer: push / norms[layer]
        for layer, push in pushes.items()
        if norms.get(layer, 0.0) > 0 and math.isfinite(norms[layer])
    }
    total = sum(ratios.values())
    if total <= GIBBERISH_RATIO:
        return
    layer = max(ratios, key=lambda k: ratios[k])
    where = (
        f"at layer {layer}"
        if len(ratios) == 1
        else f"adding up to {total:.2f}x over {len(ratios)} layers (largest at layer {layer}"
    )
    detail = (
        f"steering pushes {pushes[layer]:.3g} {where}, {ratios[layer]:.2f}x its activation "
        f"norm {norms[layer]:.3g}"
        if len(ratios) == 1
        else f"steering pushes {where}: {pushes[layer]:.3g}, {ratios[layer]:.2f}x its "
        f"activation norm {norms[layer]:.3g})"
    )
    warnings.warn(
        f"{detail}; above {GIBBERISH_RATIO}x in total the model's text usually degrades into "
        "gibberish: run `steerlab calibrate` for a recommended coefficient, or use "
        "scale='norm' with a smaller one",
        SteeringStrengthWarning,
        stacklevel=stacklevel,
    )


def steer(
    model: nn.Module,
    vector: SteeringVector,
    coefficient: Coefficient = 1.0,
    *,
    layers: LayerSelection = None,
    operator: Operator = "add",
    normalize: bool | None = None,
    scale_by_norm: bool | None = None,
    positions: Positions = "all",
    layers_path: str | None = None,
    scale: Scale | None = None,
    sites: Sites = "blocks",
) -> Any:
    """Context manager: every forward or ``generate`` inside it is steered, and only there.

    Args:
        model: a transformers causal LM.
        vector: the steering vector (must come from the same kind of model).
        coefficient: a scalar, or one value per batch row (list or 1-D tensor).
        layers: ``None`` (all layers of the vector), an int, ``"12-18"``, a list, a range,
            or ``"all"``.
        operator: ``add``, ``ablate`` or ``clamp`` (see the module docstring).
        normalize: deprecated: use ``scale="unit"``.
        scale_by_norm: deprecated: use ``scale="norm"``.
        positions: ``all``, ``prompt`` or ``generated``.
        layers_path: dotted path of the decoder block list, if it cannot be found.
        scale: what ``coefficient`` is measured in: ``vector`` (default: the vector as
            extracted), ``unit`` (its unit direction) or ``norm`` (a fraction of the layer's
            typical activation norm; 0.1-0.3 steers visibly on middle layers).
        sites: ``blocks`` (default) or ``everywhere``: with ``operator="ablate"`` and one
            layer, remove that layer's direction from the embeddings and every sub-layer's
            output, as a checkpoint folded by :func:`steerlab.export.fold` does.

    Example:
        >>> with steer(model, vector, coefficient=0.2, layers=[15], scale="norm"):
        ...     out = model.generate(**inputs)
    """
    if isinstance(layers, list | range):
        layers = tuple(layers)
    if isinstance(coefficient, list):
        coefficient = tuple(coefficient)
    spec = SteerSpec(
        coefficient=coefficient,  # type: ignore[arg-type]
        layers=layers,  # type: ignore[arg-type]
        operator=operator,
        positions=positions,
        scale=resolve_scale(scale, normalize, scale_by_norm),
        sites=sites,
    )
    return apply_spec(model, vector, spec, layers_path=layers_path)
