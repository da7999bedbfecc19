"""Representation tuning: put a steering vector "in the weights" (arXiv 2409.06927).

The model is fine-tuned on chats with the loss::

    token cross-entropy  +  λ · mean over chosen layers and positions of (1 - cos(h, s·v))

where ``h`` is the output of a chosen decoder block at a chosen token position, ``v`` the
steering vector's direction at that layer and ``s = +1`` (toward the vector) or ``-1``
(away from it). After training the behaviour the vector steered toward needs no hook: the
run ends with a plain merged transformers checkpoint.

The maths (:func:`position_mask`, :func:`cosine_loss`, :func:`mean_cosine`) is pure:
tensors in, tensors out. :class:`RepresentationTrainer` captures the block outputs with
:func:`steerlab.hooks.hooked` and adds the term to :class:`SteerlabTrainer`'s loss;
:func:`tune` runs it through :func:`steerlab.tuning.finetune` (same run folder,
checkpoints, resumption, provenance).

Upstream assumptions: those of :mod:`steerlab.tuning.finetune` (the Trainer) and the block
output format of :func:`steerlab.hooks.hidden_of` (see :mod:`steerlab.upstream`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.errors import SpecError
from steerlab.hooks import StopForward, hooked
from steerlab.layers import find_layers
from steerlab.models import model_device, model_identity
from steerlab.tuning.config import FinetuneConfig
from steerlab.tuning.data import IGNORE_INDEX
from steerlab.tuning.finetune import FinetuneResult, finetune
from steerlab.tuning.sources import TuningData
from steerlab.tuning.trainer import SteerlabTrainer
from steerlab.validation import (
    check_bool,
    check_choice,
    check_layer_indices,
    check_number,
)
from steerlab.vector import SteeringVector

logger = logging.getLogger(__name__)

POSITIONS = ("answer", "all", "last")
DIRECTIONS = ("toward", "away")
_EPS = 1e-8


# --------------------------------------------------------------------------- maths


def position_mask(attention_mask: Tensor, labels: Tensor | None, positions: str) -> Tensor:
    """The token positions whose hidden states the representation loss uses.

    Args:
        attention_mask: ``(batch, seq)``, 1 on real tokens, 0 on padding (either side).
        labels: ``(batch, seq)`` training labels, ``IGNORE_INDEX`` outside the assistant
            tokens (needed for ``"answer"``).
        positions: ``"all"`` (every attended token), ``"answer"`` (the assistant tokens the
            cross-entropy trains on: ``labels != IGNORE_INDEX``) or ``"last"`` (the last
            attended token of each row, for right or left padding).

    Returns:
        ``(batch, seq)`` bool mask.

    Raises:
        SpecError: unknown ``positions``, or ``"answer"`` without labels.
    """
    if positions not in POSITIONS:
        raise SpecError(f"positions {positions!r} is not one of {', '.join(POSITIONS)}")
    attended = attention_mask != 0
    if positions == "all":
        return attended
    if positions == "answer":
        if labels is None:
            raise SpecError("positions 'answer' needs labels (the assistant-token mask)")
        return (labels != IGNORE_INDEX) & attended
    seq = attention_mask.shape[-1]
    index = torch.arange(seq, device=attention_mask.device).expand_as(attended)
    last = torch.where(attended, index, torch.full_like(index, -1)).amax(dim=-1, keepdim=True)
    return (index == last) & attended


def _cosines(hidden: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """cos(h, v) at the masked positions: ``(n,)`` float32 (``hidden`` is (batch, seq, d))."""
    picked = hidden[mask.to(hidden.device, torch.bool)].float()
    vector = target.to(device=picked.device, dtype=torch.float32)
    unit = vector / vector.norm().clamp_min(_EPS)
    norms = picked.norm(dim=-1)
    # A zero-norm state has cosine 0 and no gradient (not a 1/eps spike).
    cos = (picked @ unit) / norms.clamp_min(_EPS)
    return torch.where(norms > _EPS, cos, torch.zeros_like(cos))


def cosine_loss(
    hidden: Mapping[int, Tensor],
    targets: Mapping[int, Tensor],
    mask: Tensor,
    *,
    sign: float = 1.0,
    layer_weights: Mapping[int, float] | None = None,
) -> Tensor:
    """Weighted mean over layers of the mean over masked positions of ``1 - cos(h, s·v)``.

    Computed in float32; zero-norm vectors are safe (their cosine is 0).

    Args:
        hidden: ``{layer: (batch, seq, d)}`` block outputs.
        targets: ``{layer: (d,)}`` steering directions (any norm) for every layer of
            ``hidden``.
        mask: ``(batch, seq)`` bool, the positions to use (see :func:`position_mask`).
        sign: ``+1`` pulls toward the directions, ``-1`` away from them.
        layer_weights: ``{layer: weight >= 0}``; missing layers weigh 1; the result is
            normalised by the weights' sum.

    Returns:
        Scalar float32 tensor in ``[0, 2]``, differentiable w.r.t. ``hidden``. With an empty
        mask, zero (still attached to ``hidden``'s graph, so ``backward`` works).

    Raises:
        SpecError: no layers, a layer without target, or weights summing to zero.
    """
    if not hidden:
        raise SpecError("cosine_loss needs at least one layer of hidden states")
    missing = sorted(set(hidden) - set(targets))
    if missing:
        raise SpecError(f"no target direction for layer {missing[0]}")
    weights = {layer: float((layer_weights or {}).get(layer, 1.0)) for layer in hidden}
    total = sum(weights.values())
    if not total > 0:
        raise SpecError(f"layer_weights sum to {total}; at least one must be > 0")
    empty = not bool(mask.any())
    loss: Tensor | None = None
    for layer, states in hidden.items():
        if empty:  # nothing to pull: a zero that backward can still go through
            term = states.float().sum() * 0.0
        else:
            cos = _cosines(states, targets[layer] * sign, mask)
            term = (1.0 - cos).mean() * (weights[layer] / total)
        loss = term if loss is None else loss + term.to(loss.device)
    assert loss is not None
    return loss


def mean_cosine(
    hidden: Mapping[int, Tensor], targets: Mapping[int, Tensor], mask: Tensor
) -> dict[int, float]:
    """Mean ``cos(h, v)`` over the masked positions at each layer (diagnostic, no sign).

    Args:
        hidden: ``{layer: (batch, seq, d)}`` block outputs.
        targets: ``{layer: (d,)}`` directions.
        mask: ``(batch, seq)`` bool.

    Returns:
        ``{layer: mean cosine}``; NaN for a layer when the mask is empty.
    """
    with torch.no_grad():
        out: dict[int, float] = {}
        for layer, states in hidden.items():
            cos = _cosines(states.detach(), targets[layer], mask)
            out[layer] = float(cos.mean()) if cos.numel() else float("nan")
        return out


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RepresentationConfig:
    """Settings of the representation loss; validated on construction.

    Attributes:
        layers: decoder layers (0-based) whose block outputs are pulled toward the vector.
        rep_weight: λ, the weight of the cosine term (0: plain cross-entropy training,
            the term only logged).
        direction: ``"toward"`` the vector or ``"away"`` from it.
        positions: where the term applies: ``"all"`` tokens, the ``"answer"`` (assistant)
            tokens, or the ``"last"`` token of each example.
        layer_weights: one weight >= 0 per entry of ``layers`` (not all zero); None: equal.
        token_loss: also train on the token cross-entropy; False: the cosine term alone
            (the forward pass stops after the deepest chosen layer).
    """

    layers: tuple[int, ...]
    rep_weight: float = 1.0
    direction: str = "toward"
    positions: str = "all"
    layer_weights: tuple[float, ...] | None = None
    token_loss: bool = True

    def __post_init__(self) -> None:
        def store(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if isinstance(self.layers, str) or not isinstance(self.layers, Sequence):
            raise SpecError(f"layers must be a sequence of layer indices, got {self.layers!r}")
        store("layers", check_layer_indices(self.layers, "layers"))
        store("rep_weight", check_number(self.rep_weight, "rep_weight", low=0))
        check_choice(self.direction, "direction", DIRECTIONS)
        check_choice(self.positions, "positions", POSITIONS)
        if self.layer_weights is not None:
            if isinstance(self.layer_weights, str) or not isinstance(self.layer_weights, Sequence):
                raise SpecError(f"layer_weights must be a sequence, got {self.layer_weights!r}")
            if len(self.layer_weights) != len(self.layers):
                raise SpecError(
                    f"layer_weights has {len(self.layer_weights)} values for "
                    f"{len(self.layers)} layers"
                )
            weights = tuple(
                check_number(weight, "each of layer_weights", low=0)
                for weight in self.layer_weights
            )
            if not any(weight > 0 for weight in weights):
                raise SpecError("layer_weights are all zero; at least one must be > 0")
            store("layer_weights", weights)
        check_bool(self.token_loss, "token_loss")
        if not self.token_loss and self.rep_weight == 0:
            raise SpecError("token_loss=False with rep_weight=0 leaves nothing to train")

    @property
    def sign(self) -> float:
        """``+1.0`` toward the vector, ``-1.0`` away from it."""
        return 1.0 if self.direction == "toward" else -1.0

    @property
    def weights(self) -> dict[int, float]:
        """``{layer: weight}`` (all 1 when ``layer_weights`` is None)."""
        values = self.layer_weights or (1.0,) * len(self.layers)
        return {layer: float(w) for layer, w in zip(self.layers, values, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in the provenance file)."""
        return {
            "layers": list(self.layers),
            "rep_weight": float(self.rep_weight),
            "direction": self.direction,
            "positions": self.positions,
            "layer_weights": None
            if self.layer_weights is None
            else [float(w) for w in self.layer_weights],
            "token_loss": self.token_loss,
        }


# --------------------------------------------------------------------------- trainer


class RepresentationTrainer(SteerlabTrainer):
    """A :class:`SteerlabTrainer` adding ``λ · cosine_loss`` on chosen block outputs.

    Logged each step next to ``loss``: ``ce_loss`` (when the cross-entropy is trained),
    ``rep_loss`` (the cosine loss before λ), ``cos_sim`` (``1 - rep_loss``: the weighted
    mean cosine to ``s·v``) and ``rep_term`` (``λ · rep_loss``, what joins the loss).

    Args:
        representation: the loss settings.
        targets: ``{layer: (d,) direction}`` for every layer of ``representation.layers``.
        layers_path: dotted path of the decoder blocks, if not found automatically.
        *args, **kwargs: passed to :class:`transformers.Trainer`.
    """

    def __init__(
        self,
        *args: Any,
        representation: RepresentationConfig,
        targets: Mapping[int, Tensor],
        layers_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        missing = [layer for layer in representation.layers if layer not in targets]
        if missing:
            raise SpecError(f"targets lack layer {missing[0]} of the representation layers")
        super().__init__(*args, **kwargs)
        self.representation = representation
        self.targets = {layer: targets[layer].detach() for layer in representation.layers}
        self.layers_path = layers_path
        self._blocks_cache: tuple[int, tuple[nn.Module, ...]] | None = None
        if not representation.token_loss:
            self._freeze_after_deepest()

    def _freeze_after_deepest(self) -> None:
        """Representation-only: what follows the deepest cosine layer (its layers or LoRA
        adapters, the head) gets no gradient, so it is not trained. Nothing changes in one
        process; DDP wants a gradient for every trained parameter (or a graph search each
        step, ``find_unused_parameters``)."""
        assert self.model is not None
        deepest = max(self.representation.layers)
        later: list[nn.Module] = list(self._blocks(self.model)[deepest + 1 :])
        head = getattr(self.accelerator.unwrap_model(self.model), "get_output_embeddings", None)
        if callable(head) and isinstance(head(), nn.Module):
            later.append(head())
        frozen = [p for module in later for p in module.parameters() if p.requires_grad]
        for parameter in frozen:
            parameter.requires_grad_(False)
        if frozen:
            logger.info(
                "representation-only: %d tensors after layer %d frozen", len(frozen), deepest
            )

    # -- capture ---------------------------------------------------------------------------
    def _blocks(self, model: nn.Module) -> tuple[nn.Module, ...]:
        unwrapped = self.accelerator.unwrap_model(model)
        if self._blocks_cache is None or self._blocks_cache[0] != id(unwrapped):
            layer_map = find_layers(unwrapped, self.layers_path)
            layer_map.resolve(list(self.representation.layers))  # LayerError if out of range
            self._blocks_cache = (id(unwrapped), layer_map.blocks)
        return self._blocks_cache[1]

    @contextlib.contextmanager
    def _capture(self, model: nn.Module, stop: bool) -> Iterator[dict[int, Tensor]]:
        """Capture the chosen block outputs (with grad); ``stop``: end after the deepest."""
        blocks = self._blocks(model)
        deepest = max(self.representation.layers)
        captured: dict[int, Tensor] = {}

        def keeper(layer: int) -> Any:
            def keep(hidden: Tensor) -> None:
                captured[layer] = hidden
                if stop and layer == deepest:
                    raise StopForward

            return keep

        with hooked(outputs=[(blocks[i], keeper(i)) for i in self.representation.layers]):
            yield captured

    def forward_context(
        self, model: nn.Module, inputs: Mapping[str, Any]
    ) -> contextlib.AbstractContextManager[Any]:
        """Capture the chosen block outputs during the forward pass."""
        return self._capture(model, stop=False)

    # -- loss ------------------------------------------------------------------------------
    def _rep_loss(self, inputs: Mapping[str, Any], captured: Mapping[int, Tensor]) -> Tensor:
        missing = [layer for layer in self.representation.layers if layer not in captured]
        if missing:
            raise RuntimeError(f"layer {missing[0]} produced no hidden state in the forward pass")
        ids = inputs["input_ids"]
        attention = inputs.get("attention_mask")
        if attention is None:
            attention = torch.ones_like(ids)
        mask = position_mask(attention, inputs.get("labels"), self.representation.positions)
        loss = cosine_loss(
            {layer: captured[layer] for layer in self.representation.layers},
            self.targets,
            mask,
            sign=self.representation.sign,
            layer_weights=self.representation.weights,
        )
        return self._share_of_global_mean(loss, mask)

    def _share_of_global_mean(self, loss: Tensor, mask: Tensor) -> Tensor:
        """This process's part of the mean over the positions of *all* processes.

        ``loss`` is a mean over this process's masked positions. Data-parallel training
        averages the processes' gradients, and the cross-entropy is already normalised
        over every process's tokens; for the cosine term to be the mean over the whole
        global batch (as in one process, not a mean of per-process means) it is scaled by
        ``N * local positions / all positions``. One process: unchanged.
        """
        world = int(self.accelerator.num_processes)
        if world <= 1:
            return loss
        count = int(mask.sum())
        total = int(self.accelerator.reduce(torch.tensor(count, device=self.args.device), "sum"))
        return loss * (count * world / total) if total > 0 else loss

    def _log_rep(self, model: nn.Module, rep: Tensor, term: Tensor | float) -> None:
        if model.training:
            self.log_component("rep_loss", rep)
            self.log_component("cos_sim", 1.0 - rep.detach())
            self.log_component("rep_term", term)

    def extra_losses(
        self,
        model: nn.Module,
        inputs: Mapping[str, Any],
        outputs: Any,
        captured: Any,
    ) -> dict[str, Tensor]:
        """``{"rep_term": λ · rep_loss}``; with λ = 0 nothing (the term is only logged)."""
        weight = float(self.representation.rep_weight)
        if weight == 0:
            with torch.no_grad():
                rep = self._rep_loss(inputs, captured)
            self._log_rep(model, rep, 0.0)
            return {}
        rep = self._rep_loss(inputs, captured)
        if model.training:
            self.log_component("rep_loss", rep)
            self.log_component("cos_sim", 1.0 - rep.detach())
        return {"rep_term": weight * rep}

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        """Cross-entropy plus ``λ · rep_loss``, or ``λ · rep_loss`` alone (``token_loss`` False)."""
        if not self.representation.token_loss:
            return self._representation_only(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if self.representation.rep_weight == 0 and model.training:
            # The base class logs ce_loss only when extra terms exist; λ = 0 adds none.
            steps = self.accumulation_divisor(num_items_in_batch)
            self.log_component("ce_loss", loss.detach() * steps)
        return (loss, outputs) if return_outputs else loss

    def _representation_only(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> Tensor | tuple[Tensor, Any]:
        forward_inputs = {key: value for key, value in inputs.items() if key != "labels"}
        unwrapped = self.accelerator.unwrap_model(model)
        if unwrapped is model:  # one process: stop after the deepest layer
            with self._capture(model, stop=True) as captured, contextlib.suppress(StopForward):
                model(**forward_inputs)
        else:
            # A data-parallel wrapper (DDP) syncs gradients only after a forward that returns:
            # run to the end. The later layers are frozen (backward stops at the deepest
            # chosen layer); compute the logits of one position when the model allows.
            with self._capture(model, stop=False) as captured:
                model(**forward_inputs, **_few_logits(unwrapped))
        rep = self._rep_loss(inputs, captured)
        weight = float(self.representation.rep_weight)
        term = weight * rep
        self._log_rep(model, rep, term)
        # Same accumulation scaling as the extra terms of SteerlabTrainer.compute_loss.
        loss = term / self.accumulation_divisor(num_items_in_batch)
        outputs = CausalLMOutputWithPast(loss=loss)
        return (loss, outputs) if return_outputs else loss


def _few_logits(model: nn.Module) -> dict[str, Any]:
    """``{"logits_to_keep": 1}`` when the (base) model's forward takes it, else nothing."""
    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    try:
        parameters = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}


# --------------------------------------------------------------------------- tune


def tune(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    vector: SteeringVector,
    chats: Sequence[Sequence[Mapping[str, str]]] | TuningData | str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    representation: RepresentationConfig,
    config: FinetuneConfig | None = None,
    *,
    progress: bool = True,
    resume: bool = True,
    base_model: str | None = None,
    layers_path: str | None = None,
    training_args: Mapping[str, Any] | None = None,
) -> FinetuneResult:
    """Representation-tune ``model`` on chats toward (or away from) ``vector``.

    Runs :func:`steerlab.tuning.finetune` with a :class:`RepresentationTrainer`: same run
    folder, checkpoints, resumption and early stopping. The run always ends with a plain
    merged transformers checkpoint: ``merged/`` for LoRA (``merge`` is forced on), the run
    folder itself for layer fine-tunes.

    Args:
        model: the base causal LM (changed in place, as with ``finetune``).
        tokenizer: its tokenizer.
        vector: the steering vector; must fit the model and hold every representation layer.
        chats: the chats, a JSON/JSONL file of them, or the :class:`TuningData` of
            :func:`~steerlab.tuning.sources.tuning_chats` (then the provenance records where
            the data came from, which ``evaluate`` uses to score held-out facts only).
        output_dir: the run folder.
        representation: the cosine-loss settings.
        config: fine-tune settings; None: ``FinetuneConfig()``'s defaults, the same as
            :func:`~steerlab.tuning.finetune`'s (e.g. ``eval_fraction=0``: no validation
            split). The one setting ``tune`` changes: ``merge`` is forced to True for LoRA
            runs (logged when the given config had it False).
        progress: show the Trainer's progress bar and log lines.
        resume: continue from the last checkpoint of ``output_dir`` (refused when it was
            made with other representation settings or another vector).
        base_model: id recorded as the adapter's base (see ``finetune``).
        layers_path: dotted path of the decoder blocks, if not found automatically.
        training_args: ``TrainingArguments`` overrides.

    Returns:
        The :class:`FinetuneResult` (``model`` is the merged model for LoRA runs).

    Raises:
        SpecError: a vector lacking a chosen layer, bad settings, an incompatible run folder.
        ModelMismatchError: a vector made on a model of another shape.
        LayerError: layers out of range for the model.
    """
    missing = [layer for layer in representation.layers if layer not in vector.directions]
    if missing:
        held = ",".join(str(layer) for layer in vector.layers)
        raise SpecError(f"the vector has no direction at layer {missing[0]}; it has layers {held}")
    vector.check_compatible(model_identity(model))
    find_layers(model, layers_path).resolve(list(representation.layers))
    if config is None:
        config = FinetuneConfig(merge=True)  # every other setting: FinetuneConfig's default
    elif config.method == "lora" and not config.merge:
        # A representation-tuned model must run without hooks or peft: always merge.
        logger.info("tune: merge=True (a LoRA run always ends with a merged checkpoint)")
        config = dataclasses.replace(config, merge=True)
    _check_gradient_path(config, representation)

    device = model_device(model)
    targets = {
        layer: vector.directions[layer].to(device=device, dtype=torch.float32)
        for layer in representation.layers
    }
    extra: dict[str, Any] = {}
    if isinstance(chats, TuningData):
        extra["data_source"] = chats.record()
        chats = list(chats.chats)
    meta = vector.metadata
    record = {
        **representation.to_dict(),
        "vector_sha256": vector.sha256(sorted(representation.layers)),
        "vector_model": meta.model_id,
        "vector_method": meta.method,
    }
    return finetune(
        model,
        tokenizer,
        chats,
        output_dir,
        config,
        progress=progress,
        resume=resume,
        base_model=base_model,
        layers_path=layers_path,
        trainer_class=RepresentationTrainer,
        trainer_kwargs={
            "representation": representation,
            "targets": targets,
            "layers_path": layers_path,
        },
        training_args=training_args,
        kind="represent",
        provenance_extra={"representation": record, **extra},
    )


def _check_gradient_path(config: FinetuneConfig, representation: RepresentationConfig) -> None:
    """Refuse (or warn about) layer fine-tunes the cosine term cannot reach."""
    if config.full_finetune_layers is None:
        if not representation.token_loss:
            logger.info(
                "representation-only LoRA: adapters after layer %d receive no gradient",
                max(representation.layers),
            )
        return
    deepest = max(representation.layers)
    trained = sorted(set(config.full_finetune_layers))
    reachable = [layer for layer in trained if layer <= deepest]
    if not reachable:
        if not representation.token_loss:
            raise SpecError(
                f"full_finetune_layers {trained} all come after the deepest representation "
                f"layer {deepest}: with token_loss=False nothing would be trained"
            )
        logger.warning(
            "full_finetune_layers %s all come after representation layer %d: the cosine term "
            "cannot change them",
            trained,
            deepest,
        )
    elif not representation.token_loss and len(reachable) < len(trained):
        logger.warning(
            "representation-only tuning: layers %s after layer %d receive no gradient",
            [layer for layer in trained if layer > deepest],
            deepest,
        )
