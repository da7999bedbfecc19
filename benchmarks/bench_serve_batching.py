"""``steerlab serve``: 8 concurrent requests with 8 coefficients vs the same 8 one after another.

A live server (uvicorn on 127.0.0.1, in this process) on the shared model with the shipped
happy/sad vector; each request is a real HTTP ``POST /v1/chat/completions`` (greedy,
``max_tokens`` = the plan's tokens, steering layers 12-18 at ``scale="norm"``). Concurrent:
8 client threads send at once, and the server's dynamic batching decodes them together with
one coefficient per row. Sequential: one client sends them one after another. Target:
sequential time / concurrent time >= 3 (tokens per second both ways in the table).
"""

from __future__ import annotations

import json
import statistics
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import torch

from benchmarks.harness import Benchmark, Context, Plan, interleaved, spread
from benchmarks.report import BenchResult, check, verdict
from steerlab.serve import ServeConfig, create_app, serve_in_background

COEFFICIENTS = (-0.1, -0.07, -0.04, -0.01, 0.01, 0.04, 0.07, 0.1)
PROMPT = "Tell me about your day."


def _ask(base: str, coefficient: float, max_tokens: int) -> tuple[str, int]:
    body = {
        "model": "default",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "steering": {
            "vector": "happy_sad",
            "coefficient": coefficient,
            "layers": "12-18",
            "scale": "norm",
        },
    }
    request = urllib.request.Request(
        base + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    return answer["choices"][0]["message"]["content"], answer["usage"]["completion_tokens"]


def run(ctx: Context) -> BenchResult:
    """Time 8 concurrent requests against the same 8 sent one after another."""
    plan = ctx.plan
    k = len(COEFFICIENTS)
    app = create_app(ctx.model, ctx.tokenizer, config=ServeConfig(batch_window_ms=50))
    engine = app.state.steerlab.engine
    last: dict[str, list[tuple[str, int]]] = {}
    with serve_in_background(app, log_level="error") as base:

        def concurrent() -> None:
            engine.threads = torch.get_num_threads()  # the harness may have changed it
            with ThreadPoolExecutor(k) as pool:
                answers = pool.map(lambda c: _ask(base, c, plan.new_tokens), COEFFICIENTS)
                last["concurrent"] = list(answers)

        def sequential() -> None:
            engine.threads = torch.get_num_threads()
            last["sequential"] = [_ask(base, c, plan.new_tokens) for c in COEFFICIENTS]

        c_name, s_name = f"concurrent ({k} clients at once)", f"sequential ({k} requests)"
        variants = {c_name: concurrent, s_name: sequential}
        warm = {"one request": lambda: _ask(base, 0.0, 8), "concurrent": concurrent}
        timings = interleaved(variants, plan, adaptive=ctx.adaptive, warmup=warm)
    engine.close()
    speedups = timings.ratios(s_name, c_name)
    r = float(statistics.median(speedups))
    c = check("sequential time / concurrent time", r, 3.0, at_most=False, reliable=timings.reliable)
    tokens = sum(n for _, n in last.get("sequential", []))
    rows = []
    for name in variants:
        t = timings.median(name)
        row = [name, f"{t:.3f}", f"{tokens / t:.1f}"]
        if name == c_name:
            best = timings.best_ratio(s_name, c_name)
            row += [f"{r:.2f}x", spread(speedups, "{:.2f}"), f"{best:.2f}x", c.target, verdict(c)]
        else:
            row += ["1.00x", "-", "-", "-", "baseline"]
        rows.append(row)
    same = sum(
        a[0] == b[0]
        for a, b in zip(last.get("concurrent", []), last.get("sequential", []), strict=False)
    )
    notes = [
        *timings.notes,
        f"Completion tokens per variant: {tokens} (greedy rows may end before "
        f"{plan.new_tokens} tokens at end of text; both variants generate the same ones).",
        f"Identical text from each concurrent request and its sequential twin: {same}/{k}.",
        f"Server batches: {engine.stats['batches']} in all, the largest "
        f"{engine.stats['largest_batch']} rows.",
    ]
    return BenchResult(
        key="serve_batching",
        title=f"10. steerlab serve: {k} concurrent requests vs {k} sequential ones",
        description=(
            f"A live `steerlab serve` app (uvicorn, 127.0.0.1) on this model with the shipped "
            f"happy/sad vector; each request is an HTTP `POST /v1/chat/completions` for the "
            f"same chat prompt with its own steering coefficient "
            f"({', '.join(f'{x:g}' for x in COEFFICIENTS)}; layers 12-18, `scale=norm`), "
            f"greedy, `max_tokens` {plan.new_tokens}. Concurrent: {k} client threads send at "
            "once and the server decodes them as one batch with a coefficient per row. "
            "Sequential: one client, one request after another. Speed-up = sequential time / "
            "concurrent time of the same round, median over the clean rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "completion tokens/s (all requests)",
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
    "serve_batching",
    run,
    full=Plan(rounds=3, budget_s=200.0, new_tokens=64),
    quick=Plan(rounds=1, budget_s=60.0, new_tokens=32),
    doc=__doc__ or "",
)
