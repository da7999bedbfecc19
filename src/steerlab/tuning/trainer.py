"""The Trainer of every steerlab fine-tune, and the callback that writes its loss log.

:class:`SteerlabTrainer` is a :class:`transformers.Trainer` whose loss subclasses extend
(:meth:`~SteerlabTrainer.forward_context`, :meth:`~SteerlabTrainer.extra_losses`) and log
by parts; representation tuning adds its cosine term this way. :class:`LossLogCallback`
keeps ``loss_log.jsonl`` in step with the Trainer's log history.

Upstream assumptions (see :mod:`steerlab.upstream`): ``Trainer.compute_loss(model, inputs,
return_outputs, num_items_in_batch)`` and, for gradient accumulation, the Trainer attributes
``loss_is_scaled_for_ga`` / ``model_accepts_loss_kwargs`` / ``compute_loss_func`` /
``current_gradient_accumulation_steps``, each read with a fallback; tested in
``tests/test_upstream.py`` and by the accumulation tests in ``tests/tuning``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from steerlab.tuning.runs import log_rows, write_loss_log


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
                # With a device map the term may sit on another device than the loss.
                loss = loss + term.to(loss.device) / steps
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
        rows = log_rows(state.log_history[-1:])
        if rows:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(rows[0]) + "\n")
