"""Model-diff extraction vs two plain forward passes (base and tuned model).

``model_diff(base, tuned, tok, question_examples(tok, questions), "all", "last",
progress=False)`` on the 64 builtin honesty questions vs plain ``model(input_ids,
attention_mask, use_cache=False)`` passes of the base and of the tuned model over the same
batches (``tokenize_examples`` + ``collate_tokens``, sorted by length, batch 16, as
``record`` does). ``tuned`` is a deep copy of the model with Gaussian noise added to one
weight matrix of layer 15: the cost does not depend on the weights. Target: model_diff time
/ (base pass + tuned pass) <= 1.0. An informational row compares with decoder-only passes
of both models (recording skips the LM head, which the plain passes run).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchmarks.harness import Benchmark, Context, Plan, interleaved, spread
from benchmarks.report import BenchResult, check, verdict
from benchmarks.workloads import honesty_questions, record_batches
from steerlab.extract.model_diff import model_diff, question_examples
from steerlab.layers import find_layers
from steerlab.models import model_identity
from steerlab.vector import SteeringVector

DIFF_BATCH = 16
DIFF_QUESTIONS = 64


def perturbed_copy(model: Any, seed: int = 0) -> tuple[Any, int]:
    """A deep copy of ``model`` with noise added to one weight of its middle layer.

    Returns:
        The copy and the index of the changed layer.
    """
    with torch.inference_mode(False), torch.no_grad():
        tuned = copy.deepcopy(model)
        layer_map = find_layers(tuned)
        layer = len(layer_map.blocks) // 2
        weight = next(p for p in layer_map.blocks[layer].parameters() if p.ndim == 2)
        gen = torch.Generator().manual_seed(seed)
        weight.add_(torch.randn(weight.shape, generator=gen) * 1e-2 * float(weight.std()))
    return tuned, layer


def run(ctx: Context) -> BenchResult:
    """Time model_diff, plain passes and decoder-only passes of both models."""
    model, tok, plan = ctx.model, ctx.tokenizer, ctx.plan
    tuned, changed = perturbed_copy(model)
    examples = question_examples(tok, honesty_questions()[:DIFF_QUESTIONS])
    # The batches record() builds: tokenised without padding, sorted by length.
    batches = record_batches(tok, examples, DIFF_BATCH)
    n_tokens = sum(int(b.attention_mask.sum()) for b in batches)
    n_padded = sum(b.input_ids.numel() for b in batches)
    n_layers = model_identity(model).num_layers
    decoders = (model.get_decoder(), tuned.get_decoder())
    vectors: list[SteeringVector] = []

    def diff(items: Sequence[Any] = examples) -> None:
        vectors[:] = [
            model_diff(
                model, tuned, tok, items, "all", "last", batch_size=DIFF_BATCH, progress=False
            )
        ]

    def passes(nets: Sequence[Any], few: int | None = None) -> Callable[[], None]:
        def call() -> None:
            for net in nets:
                for b in batches[:few]:
                    net(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)

        return call

    d_name = f"model_diff ({n_layers} layers, position last)"
    p_name = "plain passes: base + tuned (model(...), with LM head)"
    o_name = "decoder-only passes: base + tuned (no LM head) [info]"
    variants = {d_name: diff, p_name: passes((model, tuned)), o_name: passes(decoders)}
    warm = {
        "model_diff (8 questions)": lambda: diff(examples[:8]),
        "plain passes (1 batch each)": passes((model, tuned), 1),
        "decoder-only passes (1 batch each)": passes(decoders, 1),
    }
    timings = interleaved(variants, plan, adaptive=ctx.adaptive, warmup=warm)
    ratios = timings.ratios(d_name, p_name)
    r = float(statistics.median(ratios))
    c = check(
        "model_diff time / (base pass + tuned pass)",
        r,
        1.0,
        at_most=True,
        reliable=timings.reliable,
    )
    info = timings.ratios(d_name, o_name)
    rows = []
    for name in variants:
        t = timings.median(name)
        row = [name, f"{t:.3f}", f"{2 * n_tokens / t:.0f}"]
        if name == d_name:
            best = timings.best_ratio(d_name, p_name)
            row += [f"{r:.3f}", spread(ratios), f"{best:.3f}", c.target, verdict(c)]
        elif name == p_name:
            row += ["1.000", "-", "-", "-", "baseline"]
        else:
            best = timings.best_ratio(d_name, o_name)
            row += [
                f"model_diff / this: {statistics.median(info):.3f}",
                spread(info),
                f"{best:.3f}",
                "-",
                "info only",
            ]
        rows.append(row)
    norms = vectors[0].directions if vectors else {}
    before = max((float(v.norm()) for k, v in norms.items() if k < changed), default=math.nan)
    after = [float(v.norm()) for k, v in norms.items() if k >= changed]
    notes = [
        *timings.notes,
        f"{len(examples)} questions (builtin honesty prompts as chat prompts ending at the "
        f"assistant header), {len(batches)} batches of {DIFF_BATCH} per model; {n_tokens} "
        f"real tokens per model ({n_padded} with padding). Tokens/s counts both models.",
        "The tuned model is a deep copy of the base with Gaussian noise (1% of the weights' "
        f"standard deviation) added to one weight matrix of layer {changed} (the cost does "
        "not depend on the weights). Sanity check of the last vector: largest difference "
        f"norm before layer {changed} {before:.2e}, mean from layer {changed} on "
        f"{statistics.mean(after) if after else math.nan:.2e}.",
        "`model_diff` includes tokenising the prompts (with offsets), the recording hooks, "
        "the reduction to the last token and averaging the differences; the baselines get "
        "pre-built batches. Recording stops after the deepest requested layer and so skips "
        "the final norm and the LM head (49152 x 576), which the plain passes run; the "
        "decoder-only row shows the ratio without that advantage.",
    ]
    return BenchResult(
        key="diff_cost",
        title=f"6. Model-diff extraction ({n_layers} layers) vs two plain forward passes",
        description=(
            f"`model_diff(base, tuned, tok, question_examples(tok, questions), 'all', 'last', "
            f"progress=False)` on {len(examples)} questions vs plain forward passes of both "
            f"models over the same batches (built with `tokenize_examples` and "
            f"`collate_tokens`, sorted by length, batch {DIFF_BATCH}, `use_cache=False`, as "
            "`record` does). Ratio = model_diff time / (base pass + tuned pass) time of the "
            "same round, median over the clean rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "real tokens/s (both models)",
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
    "diff_cost",
    run,
    full=Plan(rounds=3, budget_s=80.0),
    quick=Plan(rounds=1, budget_s=25.0),
    doc=__doc__ or "",
)
