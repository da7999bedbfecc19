"""Representation-tuning step vs plain cross-entropy step on the same LoRA model.

``RepresentationTrainer.training_step`` (cross-entropy plus λ·mean(1 - cos(h, v)) over the
outputs of layers 12-18, λ = 1) vs ``SteerlabTrainer.training_step`` (cross-entropy only),
each followed by an AdamW step, on the same LoRA model (a fresh copy of the embedded model)
and the same batch of builtin:facts chats, in interleaved rounds. Target: tuning step time
/ CE step time <= 1.15.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from transformers import TrainingArguments

import steerlab
from benchmarks.harness import Benchmark, Context, Plan, interleaved, spread
from benchmarks.report import BenchResult, check, verdict
from benchmarks.workloads import TRAIN_BATCH, TRAIN_MAX_LENGTH
from steerlab.tuning.config import FinetuneConfig
from steerlab.tuning.data import ChatDataset, collator_for
from steerlab.tuning.prepare import prepare_model
from steerlab.tuning.represent import RepresentationConfig, RepresentationTrainer
from steerlab.tuning.trainer import SteerlabTrainer

REPRESENT_LAYERS = tuple(range(12, 19))
REPRESENT_BATCHES = 4  # distinct batches, cycled; each variant sees the same batch in a round


class LoggedRepresentationTrainer(RepresentationTrainer):
    """A :class:`RepresentationTrainer` that keeps every logged loss part (a sanity check).

    The parts stay tensors until :meth:`means` is called, so that keeping them adds no
    synchronisation to the timed steps.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logged: dict[str, list[torch.Tensor]] = {}

    def log_component(self, name: str, value: torch.Tensor | float) -> None:
        super().log_component(name, value)
        kept = value.detach().float().mean() if isinstance(value, torch.Tensor) else value
        self.logged.setdefault(name, []).append(torch.as_tensor(kept))

    def means(self) -> dict[str, float]:
        """The mean of each logged part over every step so far."""
        return {k: float(torch.stack(v).mean()) for k, v in self.logged.items()}


def trainer_args(folder: str) -> TrainingArguments:
    """Arguments for a trainer whose ``training_step`` is called by hand (on the CPU)."""
    return TrainingArguments(
        output_dir=folder, report_to=[], use_cpu=True, per_device_train_batch_size=TRAIN_BATCH
    )


def run(ctx: Context) -> BenchResult:
    """Time a cross-entropy step and a representation-tuning step on the same batches."""
    plan, tok = ctx.plan, ctx.tokenizer
    chats = list(steerlab.tuning_chats("builtin:facts").chats)
    dataset = ChatDataset(tok, chats, TRAIN_MAX_LENGTH)
    collate = collator_for(tok)
    batches = [
        collate([dataset[i] for i in range(b * TRAIN_BATCH, (b + 1) * TRAIN_BATCH)])
        for b in range(REPRESENT_BATCHES)
    ]
    representation = RepresentationConfig(layers=REPRESENT_LAYERS, rep_weight=1.0)
    targets = {layer: ctx.vector.directions[layer].float() for layer in REPRESENT_LAYERS}
    state = {"batch": 0}
    # Training needs autograd (leave the suite's inference mode), on a fresh model copy.
    with torch.inference_mode(False), tempfile.TemporaryDirectory() as folder:
        fresh, _ = steerlab.load_model("default")
        trainable, _, _ = prepare_model(fresh, FinetuneConfig(), "default")
        fresh.config.use_cache = False
        plain = SteerlabTrainer(model=trainable, args=trainer_args(folder))
        represent = LoggedRepresentationTrainer(
            model=trainable,
            args=trainer_args(folder),
            representation=representation,
            targets=targets,
        )
        for trainer in (plain, represent):
            # Set by Trainer.train(); training_step reads it.
            trainer.current_gradient_accumulation_steps = 1
        optimizer = torch.optim.AdamW(
            [p for p in trainable.parameters() if p.requires_grad], lr=1e-5
        )

        def step(trainer: Any) -> Callable[[], None]:
            def call() -> None:
                batch = batches[state["batch"] % len(batches)]
                trainer.training_step(trainable, dict(batch))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            return call

        def next_round() -> None:
            state["batch"] += 1

        ce_name, rep_name = "CE step", "CE + cosine step"
        variants = {ce_name: step(plain), rep_name: step(represent)}
        timings = interleaved(variants, plan, adaptive=ctx.adaptive, after_round=next_round)
        logged = represent.means()
    gc.collect()
    ratios = timings.ratios(rep_name, ce_name)
    r = float(statistics.median(ratios))
    c = check("tuning step / CE step", r, 1.15, at_most=True, reliable=timings.reliable)
    tokens = [int(b["attention_mask"].sum()) for b in batches]
    rows = [
        [
            ce_name,
            f"{timings.median(ce_name):.3f}",
            "1.000",
            "-",
            "-",
            "-",
            "baseline",
        ],
        [
            rep_name,
            f"{timings.median(rep_name):.3f}",
            f"{r:.3f}",
            spread(ratios),
            f"{timings.best_ratio(rep_name, ce_name):.3f}",
            c.target,
            verdict(c),
        ],
    ]
    notes = [
        *timings.notes,
        f"LoRA (rank 8, every attention and MLP projection) on a fresh copy of the embedded "
        f"model; {REPRESENT_BATCHES} batches of {TRAIN_BATCH} honesty chats from "
        f"builtin:facts (max_length {TRAIN_MAX_LENGTH}; {min(tokens)}-{max(tokens)} "
        "non-pad tokens per batch), cycled so that both variants get the same batch in a round.",
        "A step = `Trainer.training_step` (forward, loss, backward) + AdamW step + zero_grad, "
        "on the same model for both trainers. The tuning step captures the outputs of layers "
        f"{REPRESENT_LAYERS[0]}-{REPRESENT_LAYERS[-1]} with hooks and adds "
        "λ·mean(1 - cos(h, v)) over all non-pad positions (λ = 1).",
        "Sanity check, mean of the logged parts over the timed tuning steps: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(logged.items())),
    ]
    return BenchResult(
        key="represent_step",
        title="7. Representation-tuning step vs plain cross-entropy step",
        description=(
            "`RepresentationTrainer.training_step` vs `SteerlabTrainer.training_step` on the "
            "same LoRA model and the same batch, interleaved rounds. Ratio = tuning step time "
            "/ CE step time of the same round, median over the clean rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "time ratio",
            "ratio range",
            "ratio of best times",
            "target",
            "result",
        ],
        rows=rows,
        checks=[c],
        notes=notes,
        rounds=timings.describe(),
    )


BENCHMARK = Benchmark(
    "represent_step",
    run,
    full=Plan(rounds=12, budget_s=90.0),
    quick=Plan(rounds=4, budget_s=30.0),
    doc=__doc__ or "",
)
