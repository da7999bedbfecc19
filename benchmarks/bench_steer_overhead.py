"""Steering overhead in generation: steered vs unsteered greedy ``generate``, batch 1.

Greedy ``model.generate`` of 64 new tokens (32 with ``--quick``) from one chat prompt,
unsteered vs inside ``steerlab.steer(model, vector, 0.5, layers=[15], normalize=True)`` vs
the same at all 30 layers (operator ``add``, a random vector). Targets: time ratio <= 1.03
(one layer) and <= 1.05 (all layers).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import steerlab
from benchmarks.harness import Benchmark, Context, Plan, interleaved, spread
from benchmarks.report import BenchResult, check, verdict
from benchmarks.workloads import chat_inputs, generate_exact, greedy_kwargs
from steerlab.models import model_identity

STEER_COEFFICIENT = 0.5


def run(ctx: Context) -> BenchResult:
    """Time unsteered, one-layer and all-layer steered generation in interleaved rounds."""
    model, tok, plan = ctx.model, ctx.tokenizer, ctx.plan
    n_layers = model_identity(model).num_layers
    inputs = chat_inputs(tok, 1)
    kwargs = greedy_kwargs(tok, plan.new_tokens)

    def unsteered() -> None:
        generate_exact(model, inputs, kwargs)

    def steered(layers: Any) -> Callable[[], None]:
        def call() -> None:
            with steerlab.steer(
                model, ctx.vector, STEER_COEFFICIENT, layers=layers, normalize=True
            ):
                generate_exact(model, inputs, kwargs)

        return call

    base = "unsteered"
    one, every = "steered, layer 15", f"steered, all {n_layers} layers"
    variants = {base: unsteered, one: steered([15]), every: steered("all")}
    timings = interleaved(variants, plan, adaptive=ctx.adaptive)
    targets = {one: 1.03, every: 1.05}
    rows, checks = [], []
    for name in variants:
        t = timings.median(name)
        tps = plan.new_tokens / t
        if name == base:
            rows.append([name, f"{t:.3f}", f"{tps:.2f}", "1.000", "-", "-", "-", "baseline"])
            continue
        ratios = timings.ratios(name, base)
        r = float(statistics.median(ratios))
        c = check(
            f"{name}: time / unsteered time",
            r,
            targets[name],
            at_most=True,
            reliable=timings.reliable,
        )
        checks.append(c)
        rows.append(
            [
                name,
                f"{t:.3f}",
                f"{tps:.2f}",
                f"{r:.3f} ({(r - 1) * 100:+.1f}%)",
                spread(ratios),
                f"{timings.best_ratio(name, base):.3f}",
                c.target,
                verdict(c),
            ]
        )
    return BenchResult(
        key="steer_overhead",
        title="1. Steered vs unsteered greedy generation (batch 1)",
        description=(
            f"Greedy `model.generate` of exactly {plan.new_tokens} new tokens "
            f"(`min_new_tokens = max_new_tokens`) from one chat prompt "
            f"({inputs['input_ids'].shape[1]} tokens), batch 1, KV cache on. Steered runs wrap "
            f"the call in `steerlab.steer(model, vector, {STEER_COEFFICIENT}, layers=..., "
            "normalize=True)` (operator `add`, positions `all`) with a random vector that has "
            "a direction at every layer. Ratio = steered time / unsteered time of the same "
            "round, median over the clean rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "tokens/s",
            "time ratio (overhead)",
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
    "steer_overhead",
    run,
    full=Plan(rounds=9, budget_s=120.0, new_tokens=64),
    quick=Plan(rounds=3, budget_s=35.0, new_tokens=32),
    doc=__doc__ or "",
)
