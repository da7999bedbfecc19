"""K = 8 coefficients in one batch: one batched ``generate`` vs 8 sequential ones.

One ``generate`` over 8 copies of the prompt inside ``steer(..., coefficient=[8 values],
layers=[15])`` (one coefficient per row) vs 8 batch-1 ``generate`` calls each inside
``steer(..., coefficient=c)``; 64 new tokens per row (32 with ``--quick``). Target:
sequential time / batched time >= 4. Also reports how many batched rows produced the same
greedy tokens as their sequential counterpart (informational).
"""

from __future__ import annotations

import statistics

import steerlab
from benchmarks.harness import Benchmark, Context, Plan, interleaved, spread
from benchmarks.report import BenchResult, check, verdict
from benchmarks.workloads import chat_inputs, generate_exact, greedy_kwargs

BATCH_COEFFICIENTS = (-4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0)


def run(ctx: Context) -> BenchResult:
    """Time one batched generate against one generate per coefficient."""
    model, tok, plan = ctx.model, ctx.tokenizer, ctx.plan
    k = len(BATCH_COEFFICIENTS)
    one = chat_inputs(tok, 1)
    batch = chat_inputs(tok, k)  # identical prompts: no padding
    kwargs = greedy_kwargs(tok, plan.new_tokens)
    last: dict[str, list[list[int]]] = {}

    def batched() -> None:
        with steerlab.steer(
            model, ctx.vector, list(BATCH_COEFFICIENTS), layers=[15], normalize=True
        ):
            out = generate_exact(model, batch, kwargs)
        last["batched"] = out[:, batch["input_ids"].shape[1] :].tolist()

    def single(c: float) -> list[int]:
        with steerlab.steer(model, ctx.vector, c, layers=[15], normalize=True):
            out = generate_exact(model, one, kwargs)
        return out[0, one["input_ids"].shape[1] :].tolist()

    def sequential() -> None:
        last["sequential"] = [single(c) for c in BATCH_COEFFICIENTS]

    b_name, s_name = f"batched (1 generate, {k} rows)", f"sequential ({k} generates)"
    variants = {b_name: batched, s_name: sequential}
    warm = {"batched": batched, "sequential (one row)": lambda: single(BATCH_COEFFICIENTS[0])}
    timings = interleaved(variants, plan, adaptive=ctx.adaptive, warmup=warm)
    speedups = timings.ratios(s_name, b_name)
    r = float(statistics.median(speedups))
    c = check("sequential time / batched time", r, 4.0, at_most=False, reliable=timings.reliable)
    tokens = k * plan.new_tokens
    rows = []
    for name in variants:
        t = timings.median(name)
        row = [name, f"{t:.3f}", f"{tokens / t:.1f}"]
        if name == b_name:
            best = timings.best_ratio(s_name, b_name)
            row += [f"{r:.2f}x", spread(speedups, "{:.2f}"), f"{best:.2f}x", c.target, verdict(c)]
        else:
            row += ["1.00x", "-", "-", "-", "baseline"]
        rows.append(row)
    same = sum(
        a == b for a, b in zip(last.get("batched", []), last.get("sequential", []), strict=False)
    )
    notes = [
        *timings.notes,
        f"Greedy continuations identical between each batched row and the sequential run of "
        f"the same coefficient: {same}/{k} rows (informational; batched float32 matmuls may "
        "round differently).",
    ]
    return BenchResult(
        key="batched_coefficients",
        title=f"2. K={k} coefficients: one batched generate vs {k} sequential generates",
        description=(
            f"Steering at layer 15 (`normalize=True`) with coefficients "
            f"{', '.join(f'{x:g}' for x in BATCH_COEFFICIENTS)}. Batched: one `model.generate` "
            f"over {k} copies of the chat prompt inside `steerlab.steer(..., coefficient=[{k} "
            f"values])` (one coefficient per row). Sequential: {k} batch-1 `generate` calls, "
            f"each inside `steerlab.steer(..., coefficient=c)`. Every row gets exactly "
            f"{plan.new_tokens} new tokens (greedy, `min_new_tokens`). Speed-up = sequential "
            "time / batched time of the same round, median over the clean rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "generated tokens/s (all rows)",
            "speed-up",
            "speed-up range",
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
    "batched_coefficients",
    run,
    full=Plan(rounds=3, budget_s=200.0, new_tokens=64),
    quick=Plan(rounds=1, budget_s=50.0, new_tokens=32),
    doc=__doc__ or "",
)
