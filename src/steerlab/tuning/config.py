"""The settings of a fine-tune (:class:`FinetuneConfig`), validated when built.

One default per setting, shared by :func:`~steerlab.tuning.finetune` and
:func:`~steerlab.tuning.tune` (which only forces ``merge`` on for LoRA runs, see its
docstring).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from steerlab.errors import SpecError
from steerlab.validation import (
    check_bool,
    check_choice,
    check_int,
    check_layer_indices,
    check_number,
)

SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
"""The transformers learning-rate schedulers a fine-tune may name."""


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
        batch_size: examples per forward pass, in all: the global batch. Under
            ``accelerate launch`` or ``torchrun`` with N processes each takes
            ``batch_size / N`` of them (must divide), so the loss curve is that of one
            process with the same settings. The examples per optimiser step are
            ``batch_size * gradient_accumulation``.
        gradient_accumulation: forward passes per optimiser step.
        max_length: tokens per example at most (longer chats are cut on the right).
        seed: seed of the LoRA initialisation, data order and eval split.
        logging_steps: log (and write to ``loss_log.jsonl``) every this many steps.
        save_steps: checkpoint every this many steps (the last two are kept).
        eval_fraction: fraction of the chats held out to compute an eval loss; 0 (the
            default, in :func:`~steerlab.tuning.finetune` and :func:`~steerlab.tuning.tune`
            alike): none.
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
        self._validate()

    def _validate(self) -> None:
        """Check every field and store it normalised (``numpy.int64(4)`` -> ``4``)."""

        def store(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, minimum in _INTEGER_MINIMA.items():
            store(name, check_int(getattr(self, name), name, minimum=minimum))
        store("max_steps", check_int(self.max_steps, "max_steps", minimum=1, optional=True))
        store("alpha", check_number(self.alpha, "alpha", low=0, low_open=True))
        store("dropout", check_number(self.dropout, "dropout", low=0, high=1, high_open=True))
        store("epochs", check_number(self.epochs, "epochs", low=0, low_open=True))
        store(
            "learning_rate",
            check_number(self.learning_rate, "learning_rate", low=0, low_open=True),
        )
        store(
            "eval_fraction",
            check_number(self.eval_fraction, "eval_fraction", low=0, high=1, high_open=True),
        )
        store("weight_decay", check_number(self.weight_decay, "weight_decay", low=0))
        store(
            "early_stopping_threshold",
            check_number(self.early_stopping_threshold, "early_stopping_threshold", low=0),
        )
        store("merge", check_bool(self.merge, "merge"))
        check_choice(self.lr_scheduler, "lr_scheduler", SCHEDULERS)
        patience = check_int(
            self.early_stopping_patience, "early_stopping_patience", minimum=1, optional=True
        )
        store("early_stopping_patience", patience)
        if patience is not None and self.eval_fraction <= 0:
            raise SpecError(
                f"early_stopping_patience={patience} needs eval_fraction > 0, "
                f"got {self.eval_fraction!r}"
            )
        if self.target_modules is not None:
            if not self.target_modules:
                raise SpecError("target_modules is empty; give module names or None (auto)")
            for name in self.target_modules:
                if not isinstance(name, str) or not name.strip():
                    raise SpecError(f"target module {name!r} is not a module name")
        if self.full_finetune_layers is not None:
            layers = check_layer_indices(
                self.full_finetune_layers, "full_finetune_layers", allow_duplicates=True
            )
            store("full_finetune_layers", layers)

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


_INTEGER_MINIMA = {
    "rank": 1,
    "batch_size": 1,
    "gradient_accumulation": 1,
    "max_length": 2,
    "seed": 0,
    "logging_steps": 1,
    "save_steps": 1,
    "warmup_steps": 0,
}
"""The integer fields and their smallest values."""
