"""LoRA fine-tuning throughput: optimiser steps timed against a plain forward pass.

``finetune(copy, tok, chats, tmpdir, FinetuneConfig(max_steps=..., batch_size=4,
max_length=128, save_steps=10000, learning_rate=1e-4), progress=False, resume=False)`` on a
fresh copy of the model (peft injects LoRA layers in place, so the shared model must not be
trained; loading is not timed), on 64 chats from ``builtin_pairs("honesty")``. The Trainer
owns the loop, so a Trainer callback (:class:`StepTimer`) times each optimiser step and,
interleaved with it, a no-grad forward pass of the untouched base model on the same batch.
No target: reports throughput (non-pad tokens/s) and the median ratio step time / forward
time, both as "info only" rows of the summary.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from typing import Any

import torch
from transformers import TrainerCallback

import steerlab
from benchmarks.harness import (
    Benchmark,
    Context,
    Plan,
    Sample,
    Timings,
    allowance,
    cpu_snapshot,
    dropped_to_one_thread,
    foreign_cores,
    log,
    spread,
)
from benchmarks.report import BenchResult
from benchmarks.workloads import TRAIN_BATCH, TRAIN_MAX_LENGTH, honesty_chats
from steerlab.tuning.config import FinetuneConfig
from steerlab.tuning.finetune import finetune
from steerlab.tuning.trainer import SteerlabTrainer

WARMUP_STEPS = 2  # the first steps set up the optimiser state and autograd


class StepTimer(TrainerCallback):
    """Times each optimiser step of a fine-tune, interleaved with a plain forward pass.

    A step is what the Trainer does between ``on_step_begin`` and ``on_step_end``: forward
    with the loss, backward, gradient clipping, the AdamW update and the scheduler step
    (the batch is already collated; logging comes after). Each round pairs one step with a
    no-grad forward pass of the untouched base model on the very same batch, run after the
    step in even rounds and before it in odd ones. Rounds are clean or contended as in
    :func:`benchmarks.harness.interleaved`, which this mirrors for a loop the Trainer owns:
    it asks the Trainer to stop once ``rounds`` clean rounds are done, after ``3 * rounds``
    rounds, or when the next round would overrun the budget (counted from ``start``).
    """

    STEP = "LoRA training step (forward + backward + AdamW)"
    FORWARD = "plain forward pass (base model, no grad, same batch)"

    def __init__(self, base: Any, plan: Plan, start: float, *, adaptive: bool) -> None:
        self.base = base
        self.rounds = plan.rounds
        self.budget_s = plan.budget_s
        self.start = start
        self.adaptive = adaptive
        self.batch: dict[str, torch.Tensor] | None = None  # set by the trainer per step
        self.timings = Timings([self.STEP, self.FORWARD], self.rounds, allowance())
        self.tokens: list[int] = []  # non-pad tokens of each round's batch
        self.padded: list[int] = []
        self.warmup: list[float] = []  # wall time of the warm-up steps
        self.all_steps: list[float] = []  # wall time of every step (discarded rounds too)
        self.forward_total = 0.0  # seconds spent in forward passes (inside the fine-tune)
        self.durations: list[float] = []
        self._samples: dict[str, Sample] = {}
        self._before: tuple[float, float] | None = None
        self._t0 = 0.0
        self._index = 0
        self._last_end: float | None = None

    def _forward(self) -> Sample:
        assert self.batch is not None
        gc.collect()
        before = cpu_snapshot()
        t0 = time.perf_counter()
        with torch.inference_mode():
            self.base(
                input_ids=self.batch["input_ids"],
                attention_mask=self.batch["attention_mask"],
                use_cache=False,
            )
        wall = time.perf_counter() - t0
        self.forward_total += wall
        return Sample(wall, foreign_cores(before, wall))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._samples = {}
        self._index = int(state.global_step)  # 0-based index of this step
        if self._index >= WARMUP_STEPS and len(self.timings.rounds) % 2 == 1:
            self._samples[self.FORWARD] = self._forward()
        gc.collect()
        self._before = cpu_snapshot()
        self._t0 = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        wall = time.perf_counter() - self._t0
        step = Sample(wall, foreign_cores(self._before, wall))
        self.all_steps.append(wall)
        if self._index < WARMUP_STEPS:
            self.warmup.append(wall)
            self._forward()  # warms up the baseline too
            log(f"  warm-up: training step {self._index + 1} ({wall:.2f}s)")
            self._last_end = time.perf_counter()
            return
        self._samples[self.STEP] = step
        if self.FORWARD not in self._samples:
            self._samples[self.FORWARD] = self._forward()
        now = time.perf_counter()
        if self._last_end is not None:
            self.durations.append(now - self._last_end)
        self._last_end = now
        samples = {n: self._samples[n] for n in self.timings.names}
        self.timings.rounds.append(samples)
        assert self.batch is not None
        self.tokens.append(int(self.batch["attention_mask"].sum()))
        self.padded.append(int(self.batch["input_ids"].numel()))
        clean = self.timings.is_clean(samples)
        summary = ", ".join(
            f"{n.split(' (', 1)[0]} {samples[n].wall:.2f}s (other {samples[n].foreign:.2f} cores)"
            for n in self.timings.names
        )
        r = len(self.timings.rounds)
        log(f"  round {r} [{'clean' if clean else 'CONTENDED'}]: {summary}")
        threads = torch.get_num_threads()
        if not clean and self.adaptive and threads > 1:
            note = dropped_to_one_thread(r, threads)
            self.timings = Timings(self.timings.names, self.rounds, allowance(), notes=[note])
            self.tokens, self.padded, self.durations = [], [], []
            return
        done = len(self.timings.clean) >= self.rounds or len(self.timings.rounds) >= 3 * self.rounds
        elapsed = time.perf_counter() - self.start
        if (
            not done
            and self.durations
            and elapsed + statistics.median(self.durations) > self.budget_s
        ):
            log(f"  time budget of {self.budget_s:.0f} s reached")
            done = True
        if done:
            control.should_training_stop = True

    def used_tokens(self) -> tuple[int, int]:
        """(non-pad, padded) tokens of the rounds the medians use."""
        used = [
            (t, p)
            for rnd, t, p in zip(self.timings.rounds, self.tokens, self.padded, strict=True)
            if not self.timings.clean or self.timings.is_clean(rnd)
        ]
        return sum(t for t, _ in used), sum(p for _, p in used)


def timed_trainer(timer: StepTimer) -> type[SteerlabTrainer]:
    """A :class:`SteerlabTrainer` that reports each batch and step to ``timer``."""

    class TimedTrainer(SteerlabTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_callback(timer)

        def get_batch_samples(self, *args: Any, **kwargs: Any) -> Any:
            batches, n_items = super().get_batch_samples(*args, **kwargs)
            if batches:  # one batch per step (no gradient accumulation)
                timer.batch = batches[0]
            return batches, n_items

    return TimedTrainer


def run(ctx: Context) -> BenchResult:
    """Fine-tune a fresh copy of the model while the callback times its steps."""
    plan = ctx.plan
    start = time.perf_counter()
    chats = honesty_chats()
    config = FinetuneConfig(
        # An upper bound (3 x rounds, twice if the rounds restart with 1 thread): the timer
        # stops training once it has its clean rounds or the budget is spent.
        max_steps=WARMUP_STEPS + 6 * plan.rounds,
        batch_size=TRAIN_BATCH,
        max_length=TRAIN_MAX_LENGTH,
        save_steps=10_000,
        learning_rate=1e-4,
    )
    timer = StepTimer(ctx.model, plan, start, adaptive=ctx.adaptive)
    # Training needs autograd: leave the suite's inference mode. peft changes the model it
    # wraps in place, so the fine-tune gets a fresh copy and ctx.model stays untouched.
    with torch.inference_mode(False), tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        fresh, _ = steerlab.load_model("default")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = finetune(
            fresh,
            ctx.tokenizer,
            chats,
            folder,
            config,
            progress=False,
            resume=False,
            trainer_class=timed_trainer(timer),
        )
        finetune_s = time.perf_counter() - t0
        del fresh, result
    gc.collect()
    timings = timer.timings
    if not timings.rounds:
        raise RuntimeError("the fine-tune ended before any timed step")
    step_name, fwd_name = StepTimer.STEP, StepTimer.FORWARD
    tokens, padded = timer.used_tokens()
    step_total = sum(timings.times(step_name))
    fwd_total = sum(timings.times(fwd_name))
    throughput = tokens / step_total
    ratios = timings.ratios(step_name, fwd_name)
    r = float(statistics.median(ratios))
    n_used = len(timings.used)
    rows = [
        [
            step_name,
            f"{timings.median(step_name):.3f}",
            f"{throughput:.0f}",
            f"{r:.2f}",
            spread(ratios, "{:.2f}"),
            f"{timings.best_ratio(step_name, fwd_name):.2f}",
            "-",
            "info only",
        ],
        [
            fwd_name,
            f"{timings.median(fwd_name):.3f}",
            f"{tokens / fwd_total:.0f}",
            "1.00",
            "-",
            "-",
            "-",
            "baseline",
        ],
    ]
    overhead = finetune_s - sum(timer.all_steps) - timer.forward_total
    notes = [
        *timings.notes,
        f"Data: {len(chats)} chats (builtin honesty questions answered with the pair's "
        f"negative reply), batch {TRAIN_BATCH}, max_length {TRAIN_MAX_LENGTH}, "
        f"shuffled by the Trainer; the {n_used} steps used processed {tokens} non-pad tokens "
        f"({padded} with padding, {tokens / n_used:.0f} non-pad tokens per step on average).",
        f"Tokens/s = non-pad tokens of the steps used / their summed step time. The "
        f"{WARMUP_STEPS} warm-up steps (first optimiser step, lazy set-up: "
        + ", ".join(f"{w:.2f}s" for w in timer.warmup)
        + ") are left out.",
        f"The `finetune` call took {finetune_s:.1f} s in all for {len(timer.all_steps)} "
        f"steps: {sum(timer.all_steps):.1f} s of steps (warm-up included), "
        f"{timer.forward_total:.1f} s of baseline forward passes run from the timing "
        f"callback, and {overhead:.1f} s of "
        "set-up and saving (LoRA injection, tokenising the chats, Trainer set-up, per-step "
        f"logging, writing the adapter). Loading the fresh model copy took {load_s:.1f} s "
        "(not counted).",
        "The forward pass uses the base model without LoRA layers, so the ratio also "
        "contains the LoRA layers' forward cost, not only backward and optimiser.",
    ]
    return BenchResult(
        key="finetune_throughput",
        title="5. LoRA fine-tuning throughput",
        description=(
            "`finetune(copy, tok, chats, tmpdir, FinetuneConfig(max_steps=..., "
            f"batch_size={TRAIN_BATCH}, max_length={TRAIN_MAX_LENGTH}, save_steps=10000, "
            "learning_rate=1e-4), progress=False, resume=False)` on a fresh copy of the "
            "model (LoRA rank 8 on every linear projection of the decoder blocks; "
            "assistant-only loss). A Trainer callback times each optimiser step and, "
            "interleaved with it, a no-grad `model(input_ids, attention_mask, use_cache=False)` "
            "of the base model on the same batch. Ratio = step time / forward time of the same "
            "batch, median over the clean rounds. No target: reported for information."
        ),
        columns=[
            "variant",
            "median time (s)",
            "non-pad tokens/s",
            "time ratio (step / forward)",
            "ratio range",
            "ratio of best times",
            "target",
            "result",
        ],
        rows=rows,
        checks=[],
        notes=notes,
        info=[
            ("LoRA fine-tuning throughput (non-pad tokens/s)", f"{throughput:.0f}"),
            ("training step time / forward pass time", f"{r:.2f}"),
        ],
        rounds=timings.describe(),
    )


BENCHMARK = Benchmark(
    "finetune_throughput",
    run,
    full=Plan(rounds=16, budget_s=80.0),
    quick=Plan(rounds=5, budget_s=25.0),
    doc=__doc__ or "",
)
