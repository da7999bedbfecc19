"""Extraction cost vs a forward pass: ``extract`` over all layers vs plain passes.

``steerlab.extract(model, tok, builtin_pairs("happy_sad"), method="mean_diff",
layers="all", batch_size=16)`` (64 pairs = 128 texts) vs plain ``model(input_ids,
attention_mask, use_cache=False)`` over the very same batches (built with ``pair_examples``,
``tokenize_examples`` and ``collate_tokens``, sorted by length as ``record`` does). Target:
extract time / plain time <= 1.15. Extraction stops after the last requested layer and so
skips the LM head, which the plain pass runs; an informational row compares with a
decoder-only pass (``model.get_decoder()``, no LM head).
"""

from __future__ import annotations

import statistics

import steerlab
from benchmarks.harness import Benchmark, Context, Plan, interleaved, spread
from benchmarks.report import BenchResult, check, verdict
from benchmarks.workloads import record_batches
from steerlab.data import pair_examples
from steerlab.models import model_identity

EXTRACT_BATCH = 16


def run(ctx: Context) -> BenchResult:
    """Time extract, a plain forward pass and a decoder-only pass over the same batches."""
    model, tok, plan = ctx.model, ctx.tokenizer, ctx.plan
    pairs = steerlab.builtin_pairs("happy_sad")
    # The same texts and batches that extract() -> record() builds: positive/negative
    # interleaved, tokenised without padding, sorted by length, right-padded per batch.
    examples = [e for pair in pairs for e in pair_examples(tok, pair)]
    batches = record_batches(tok, examples, EXTRACT_BATCH)
    n_tokens = sum(int(b.attention_mask.sum()) for b in batches)
    n_padded = sum(b.input_ids.numel() for b in batches)
    decoder = model.get_decoder()
    n_layers = model_identity(model).num_layers

    def extract() -> None:
        steerlab.extract(
            model,
            tok,
            pairs,
            method="mean_diff",
            layers="all",
            batch_size=EXTRACT_BATCH,
            progress=False,
        )

    def plain() -> None:
        for b in batches:
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)

    def decoder_only() -> None:
        for b in batches:
            decoder(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)

    e_name = f"extract (mean_diff, {n_layers} layers)"
    p_name = "plain forward pass (model(...), with LM head)"
    d_name = "decoder-only pass (no LM head) [info]"
    variants = {e_name: extract, p_name: plain, d_name: decoder_only}
    # A light warm-up (a few pairs, one batch) leaves the budget for measured rounds.
    warm = {
        "extract (8 pairs)": lambda: steerlab.extract(
            model, tok, pairs[:8], method="mean_diff", layers="all", progress=False
        ),
        "plain pass (1 batch)": lambda: model(
            input_ids=batches[-1].input_ids,
            attention_mask=batches[-1].attention_mask,
            use_cache=False,
        ),
        "decoder-only pass (1 batch)": lambda: decoder(
            input_ids=batches[-1].input_ids,
            attention_mask=batches[-1].attention_mask,
            use_cache=False,
        ),
    }
    timings = interleaved(variants, plan, adaptive=ctx.adaptive, warmup=warm)
    ratios = timings.ratios(e_name, p_name)
    r = float(statistics.median(ratios))
    c = check("extract time / plain forward time", r, 1.15, at_most=True, reliable=timings.reliable)
    info = timings.ratios(e_name, d_name)
    rows = []
    for name in variants:
        t = timings.median(name)
        row = [name, f"{t:.3f}", f"{n_tokens / t:.0f}"]
        if name == e_name:
            best = timings.best_ratio(e_name, p_name)
            row += [f"{r:.3f}", spread(ratios), f"{best:.3f}", c.target, verdict(c)]
        elif name == p_name:
            row += ["1.000", "-", "-", "-", "baseline"]
        else:
            best = timings.best_ratio(e_name, d_name)
            row += [
                f"extract / this: {statistics.median(info):.3f}",
                spread(info),
                f"{best:.3f}",
                "-",
                "info only",
            ]
        rows.append(row)
    notes = [
        *timings.notes,
        f"{len(pairs)} pairs = {len(examples)} texts, {len(batches)} batches of "
        f"{EXTRACT_BATCH}; {n_tokens} real tokens ({n_padded} with padding).",
        "`extract` includes rendering the chat template, tokenising (with offsets), the "
        "recording hooks, the reduction to the last token and the mean-difference maths; the "
        "baselines get pre-built batches. `extract` stops after the deepest requested layer "
        "and so never runs the final norm and the LM head (49152 x 576), which the plain "
        "pass does; the decoder-only row shows the ratio without that advantage.",
        "Both baselines pass `use_cache=False`, as `record` does, so neither side builds a "
        "KV cache.",
    ]
    return BenchResult(
        key="extract",
        title=f"3. Extracting all {n_layers} layers vs a plain forward pass",
        description=(
            "`steerlab.extract(model, tok, builtin_pairs('happy_sad'), method='mean_diff', "
            f"layers='all', batch_size={EXTRACT_BATCH}, progress=False)` vs plain forward "
            "passes over the same texts in the same batches. Ratio = extract time / "
            "plain-pass time of the same round, median over the clean rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "real tokens/s",
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
    "extract",
    run,
    full=Plan(rounds=4, budget_s=140.0),
    quick=Plan(rounds=1, budget_s=60.0),
    doc=__doc__ or "",
)
