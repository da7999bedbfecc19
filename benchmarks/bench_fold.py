"""A folded checkpoint vs the unsteered model vs hooked steering: greedy generation, batch 1.

The random vector is folded (operator ``add``, every layer, ``scale="unit"``) into a plain
checkpoint with :func:`steerlab.fold`, saved, and loaded back with plain
``AutoModelForCausalLM.from_pretrained`` as a server would; then greedy ``generate`` of 64
new tokens (32 with ``--quick``) from one chat prompt is timed for the unsteered model, the
folded checkpoint, and the unsteered model inside ``steerlab.steer`` at the same layers and
coefficient (hooks), in interleaved rounds. Target: folded / unsteered <= 1.02 (a bias add
per MLP is all a fold costs); the hooked ratio is shown for comparison. The folded and hooked
runs must also produce the same tokens (checked once, reported).
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from transformers import AutoModelForCausalLM

import steerlab
from benchmarks.harness import Benchmark, Context, Plan, interleaved, spread
from benchmarks.report import BenchResult, check, verdict
from benchmarks.workloads import chat_inputs, generate_exact, greedy_kwargs
from steerlab.models import model_identity

FOLD_COEFFICIENT = 2.0  # x the unit direction at every layer: visible, not gibberish-level


def run(ctx: Context) -> BenchResult:
    """Time unsteered, folded and hooked generation in interleaved rounds."""
    model, tok, plan = ctx.model, ctx.tokenizer, ctx.plan
    n_layers = model_identity(model).num_layers
    inputs = chat_inputs(tok, 1)
    kwargs = greedy_kwargs(tok, plan.new_tokens)
    steering: dict[str, Any] = dict(
        coefficient=FOLD_COEFFICIENT, layers="all", operator="add", scale="unit"
    )
    with tempfile.TemporaryDirectory(prefix="steerlab-fold-bench-") as folder:
        folded_copy = steerlab.fold(model, ctx.vector, **steering, output_dir=folder, tokenizer=tok)
        del folded_copy
        folded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    def unsteered() -> None:
        generate_exact(model, inputs, kwargs)

    def from_folded() -> None:
        generate_exact(folded, inputs, kwargs)

    def hooked() -> None:
        with steerlab.steer(model, ctx.vector, **steering):
            generate_exact(model, inputs, kwargs)

    with torch.inference_mode():
        folded_tokens = generate_exact(folded, inputs, kwargs)
        with steerlab.steer(model, ctx.vector, **steering):
            hooked_tokens = generate_exact(model, inputs, kwargs)
    same = bool(torch.equal(folded_tokens, hooked_tokens))

    base = "unsteered"
    fold_name = f"folded checkpoint (add, all {n_layers} layers)"
    hook_name = f"hooked steering (add, all {n_layers} layers)"
    variants: dict[str, Callable[[], None]] = {
        base: unsteered,
        fold_name: from_folded,
        hook_name: hooked,
    }
    timings = interleaved(variants, plan, adaptive=ctx.adaptive)
    rows, checks = [], []
    for name in variants:
        t = timings.median(name)
        if name == base:
            rows.append([name, f"{t:.3f}", "1.000", "-", "-", "-", "baseline"])
            continue
        ratios = timings.ratios(name, base)
        r = float(statistics.median(ratios))
        target = "-"
        result = "for comparison"
        if name == fold_name:
            c = check(
                f"{name}: time / unsteered time",
                r,
                1.02,
                at_most=True,
                reliable=timings.reliable,
            )
            checks.append(c)
            target, result = c.target, verdict(c)
        rows.append(
            [
                name,
                f"{t:.3f}",
                f"{r:.3f} ({(r - 1) * 100:+.1f}%)",
                spread(ratios),
                f"{timings.best_ratio(name, base):.3f}",
                target,
                result,
            ]
        )
    return BenchResult(
        key="fold",
        title="9. Folded checkpoint vs unsteered vs hooked steering (batch 1)",
        description=(
            f"Greedy `model.generate` of exactly {plan.new_tokens} new tokens from one chat "
            f"prompt, batch 1, KV cache on. The folded checkpoint is `steerlab.fold(model, "
            f"vector, coefficient={FOLD_COEFFICIENT:g}, layers='all', operator='add', "
            "scale='unit')` saved and reloaded with plain `AutoModelForCausalLM` (a bias on "
            "every MLP output projection); hooked = the same steering through "
            "`steerlab.steer`. Folded and hooked greedy tokens identical: "
            f"{'yes' if same else 'NO'}."
        ),
        columns=[
            "variant",
            "median time (s)",
            "time ratio vs unsteered",
            "ratio range",
            "ratio of best times",
            "target",
            "result",
        ],
        rows=rows,
        checks=checks,
        notes=timings.notes,
        rounds=timings.describe(),
    )


BENCHMARK = Benchmark(
    "fold",
    run,
    full=Plan(rounds=9, budget_s=120.0, new_tokens=64),
    quick=Plan(rounds=3, budget_s=35.0, new_tokens=32),
    doc=__doc__ or "",
)
