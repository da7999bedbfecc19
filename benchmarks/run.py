"""steerlab benchmark suite: the core engine on the embedded SmolLM2-135M-Instruct model.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full suite (about 7-9 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # fewer rounds, shorter generations (a few min)
    .venv/bin/python benchmarks/run.py --only steer_overhead,extract --threads 1

Every benchmark compares variants *within one run*: after a warm-up the variants are
interleaved (their order rotated each round), each round yields one ratio, and the reported
ratio is the median over rounds. During every sample the suite also measures how much CPU
other processes used (from ``/proc/stat``); a round in which another process took a
noticeable share of a core is marked contended and left out of the medians, and further
rounds are run while the benchmark's time budget lasts. Absolute numbers depend on the
machine; the ratios are what the targets are about.

Results go to ``BENCHMARKS.md`` at the repository root, written atomically (temporary file,
then ``os.replace``). Adding a benchmark: write a function ``(Context) -> BenchResult`` and
append a :class:`Benchmark` to ``BENCHMARKS``; the writer renders every result alike.
Benchmarks whose loop another library owns (the fine-tune's Trainer) time it from a
callback that keeps the same :class:`Timings` (see :class:`_StepTimer`).
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import TrainerCallback

import steerlab
from steerlab.data import pair_examples
from steerlab.extract.model_diff import model_diff, question_examples
from steerlab.layers import find_layers
from steerlab.models import model_identity
from steerlab.record import _collate, tokenize_examples
from steerlab.tuning.finetune import FinetuneConfig, SteerlabTrainer, finetune
from steerlab.vector import SteeringVector, VectorMetadata

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"
PROMPT = "Tell me about your plans for the weekend, and what you are looking forward to."
# A round is "contended" when other processes used at least this many cores during any of
# its samples (an idle machine shows ~0.00-0.06: kernel threads, the shell). With all
# cores in use, even ~0.25 of a core made a 2-thread generate ~1.6x slower.
CONTENTION_CORES = 0.15


# ----------------------------------------------------------------------------------------
# Settings, results and the benchmark registry
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Round counts, sizes and time budgets (seconds, warm-up included) per benchmark."""

    mode: str
    steer_rounds: int  # benchmark 1: rounds of (unsteered, 1 layer, all layers)
    steer_tokens: int
    steer_budget: float
    batch_rounds: int  # benchmark 2: rounds of (batched, sequential)
    batch_tokens: int
    batch_budget: float
    extract_rounds: int  # benchmark 3: rounds of (extract, plain pass, decoder-only pass)
    extract_budget: float
    sweep_rounds: int  # benchmark 4: rounds of (batched sweep, one sweep per coefficient)
    sweep_budget: float
    finetune_rounds: int  # benchmark 5: rounds of (LoRA training step, plain forward pass)
    finetune_budget: float
    diff_rounds: int  # benchmark 6: rounds of (model_diff, two plain passes, two decoder passes)
    diff_budget: float
    represent_rounds: int  # benchmark 7: rounds of (CE step, CE + cosine step)
    represent_budget: float
    threads: int  # 0 = choose per benchmark from the machine's load


FULL: dict[str, Any] = dict(
    steer_rounds=9,
    steer_tokens=64,
    steer_budget=120.0,
    batch_rounds=3,
    batch_tokens=64,
    batch_budget=200.0,
    extract_rounds=4,
    extract_budget=140.0,
    sweep_rounds=3,
    sweep_budget=100.0,
    finetune_rounds=16,
    finetune_budget=80.0,
    diff_rounds=3,
    diff_budget=80.0,
    represent_rounds=12,
    represent_budget=90.0,
)
QUICK: dict[str, Any] = dict(
    steer_rounds=3,
    steer_tokens=32,
    steer_budget=35.0,
    batch_rounds=1,
    batch_tokens=32,
    batch_budget=50.0,
    extract_rounds=1,
    extract_budget=60.0,
    sweep_rounds=1,
    sweep_budget=60.0,
    finetune_rounds=5,
    finetune_budget=25.0,
    diff_rounds=1,
    diff_budget=25.0,
    represent_rounds=4,
    represent_budget=30.0,
)


@dataclass(frozen=True)
class Check:
    """One target: a measured ratio against a bound."""

    label: str
    ratio: float
    target: str  # e.g. "<= 1.03"
    passed: bool
    reliable: bool = True  # False when every round was contended


@dataclass
class BenchResult:
    """What one benchmark measured, ready to render as a Markdown section."""

    key: str
    title: str
    description: str
    columns: list[str]
    rows: list[list[str]]
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    # Measured values with no target, also listed in the summary: (label, value as text).
    info: list[tuple[str, str]] = field(default_factory=list)
    rounds: str = ""  # e.g. "7 of 7 clean"
    threads: str = ""
    wall_s: float = 0.0


@dataclass
class Context:
    """Shared state handed to every benchmark."""

    model: Any
    tokenizer: Any
    settings: Settings
    vector: SteeringVector


@dataclass(frozen=True)
class Benchmark:
    key: str
    run: Callable[[Context], BenchResult]


def check(label: str, ratio: float, bound: float, *, at_most: bool, reliable: bool) -> Check:
    passed = ratio <= bound if at_most else ratio >= bound
    return Check(label, ratio, f"{'<=' if at_most else '>='} {bound:g}", passed, reliable)


def verdict(c: Check) -> str:
    text = "PASS" if c.passed else "**FAIL**"
    return text if c.reliable else f"{text} (contended, unreliable)"


# ----------------------------------------------------------------------------------------
# CPU accounting: how much of the machine other processes used
# ----------------------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_snapshot() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process), or None."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        values = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
        busy = sum(values) - values[3] - values[4]
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        own = int(after_name[11]) + int(after_name[12])  # utime, stime (fields 14, 15)
    except (OSError, ValueError, IndexError):
        return None
    return busy / _CLK_TCK, own / _CLK_TCK


def foreign_cores(before: tuple[float, float] | None, wall: float) -> float:
    """Cores' worth of CPU used by other processes since ``before`` (nan if unknown)."""
    after = _cpu_snapshot()
    if before is None or after is None or wall <= 0:
        return math.nan
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / wall)


def idle_probe(seconds: float = 1.0) -> float:
    before = _cpu_snapshot()
    start = time.perf_counter()
    time.sleep(seconds)
    return foreign_cores(before, time.perf_counter() - start)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def choose_threads(requested: int, default: int) -> tuple[int, str]:
    """Intra-op threads for the next benchmark, and why.

    With every core busy, torch's OpenMP threads wait on each other whenever another process
    takes one of their cores; on a 2-core machine that made runs 10-25x slower and erratic.
    So ``auto`` leaves one core per busy core to the other processes.
    """
    if requested > 0:
        return requested, "set with --threads"
    busy = idle_probe()
    if math.isnan(busy):
        return default, "torch default (load unknown)"
    if busy < CONTENTION_CORES:
        return default, f"auto: all cores (other processes used {busy:.2f} cores)"
    n = max(1, min(default, usable_cores() - math.ceil(busy - CONTENTION_CORES)))
    return n, f"auto: other processes were using {busy:.2f} cores when it started"


# ----------------------------------------------------------------------------------------
# Interleaved timing
# ----------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    foreign: float  # cores used by other processes meanwhile (nan if unknown)


@dataclass
class Timings:
    """Samples of interleaved variants, one dict per round."""

    names: list[str]
    wanted: int
    # Other processes' CPU use (cores) that a round tolerates: the cores our threads leave
    # free, plus a little for background noise.
    allowance: float
    rounds: list[dict[str, Sample]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def is_clean(self, rnd: dict[str, Sample]) -> bool:
        return all(math.isnan(s.foreign) or s.foreign < self.allowance for s in rnd.values())

    @property
    def clean(self) -> list[dict[str, Sample]]:
        return [r for r in self.rounds if self.is_clean(r)]

    @property
    def reliable(self) -> bool:
        return bool(self.clean)

    @property
    def used(self) -> list[dict[str, Sample]]:
        """Clean rounds, or every round when none was clean."""
        return self.clean or self.rounds

    def times(self, name: str) -> list[float]:
        return [r[name].wall for r in self.used]

    def median(self, name: str) -> float:
        return float(statistics.median(self.times(name)))

    def ratios(self, num: str, den: str) -> list[float]:
        return [r[num].wall / r[den].wall for r in self.used]

    def best_ratio(self, num: str, den: str) -> float:
        """Ratio of the fastest samples over all rounds (noise only ever adds time)."""
        return min(r[num].wall for r in self.rounds) / min(r[den].wall for r in self.rounds)

    def describe(self) -> str:
        n_clean = len(self.clean)
        foreign = [s.foreign for r in self.rounds for s in r.values() if not math.isnan(s.foreign)]
        load = (
            f"; other processes used {statistics.mean(foreign):.2f} cores on average"
            if (foreign)
            else ""
        )
        text = (
            f"{n_clean} of {len(self.rounds)} rounds clean (planned {self.wanted}; a round is "
            f"clean when other processes used < {self.allowance:.2f} cores){load}"
        )
        if not n_clean:
            text += "; no clean round: the medians use contended rounds"
        return text


def _allowance() -> float:
    return max(0, usable_cores() - torch.get_num_threads()) + CONTENTION_CORES


def interleaved(
    variants: dict[str, Callable[[], Any]],
    rounds: int,
    budget_s: float,
    *,
    adaptive: bool,
    warmup: dict[str, Callable[[], Any]] | None = None,
    after_round: Callable[[], Any] | None = None,
) -> Timings:
    """Time the variants in interleaved rounds until ``rounds`` clean rounds or the budget.

    The order is rotated every round (and reversed in alternate cycles) so that no variant
    always runs first, last or after the same neighbour; slow drifts in machine load then
    hit every variant alike, and a per-round ratio cancels most of them. At least one round
    always runs; at most ``3 * rounds``; ``after_round`` runs between rounds, untimed. With
    ``adaptive``, the first contended round run with several threads drops torch to one
    thread and starts the rounds afresh (all rounds of one benchmark use the same thread
    count).
    """
    start = time.perf_counter()
    for name, fn in (warmup if warmup is not None else variants).items():
        log(f"  warm-up: {name}")
        fn()
    names = list(variants)
    timings = Timings(names, rounds, _allowance())
    durations: list[float] = []
    while len(timings.rounds) < 3 * rounds and len(timings.clean) < rounds:
        elapsed = time.perf_counter() - start
        if durations and elapsed + statistics.median(durations) > budget_s:
            log(f"  time budget of {budget_s:.0f} s reached")
            break
        r = len(timings.rounds)
        k = r % len(names)
        order = names[k:] + names[:k]
        if (r // len(names)) % 2 == 1:
            order.reverse()
        round_start = time.perf_counter()
        samples: dict[str, Sample] = {}
        for name in order:
            gc.collect()
            before = _cpu_snapshot()
            t0 = time.perf_counter()
            variants[name]()
            wall = time.perf_counter() - t0
            samples[name] = Sample(wall, foreign_cores(before, wall))
        durations.append(time.perf_counter() - round_start)
        timings.rounds.append({n: samples[n] for n in names})
        if after_round is not None:
            after_round()
        clean = timings.is_clean(samples)
        summary = ", ".join(
            f"{n} {samples[n].wall:.2f}s (other {samples[n].foreign:.2f} cores)" for n in names
        )
        log(f"  round {r + 1} [{'clean' if clean else 'CONTENDED'}]: {summary}")
        threads = torch.get_num_threads()
        if not clean and adaptive and threads > 1:
            torch.set_num_threads(1)
            note = (
                f"Other processes became busy during round {r + 1} (run with {threads} "
                "threads); its rounds were discarded and the benchmark went on with 1 thread."
            )
            log(f"  {note}")
            timings = Timings(names, rounds, _allowance(), notes=[note])
            durations = []
    return timings


def spread(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    if len(values) < 2:
        return "n/a (1 round)"
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


def _greedy(tokenizer: Any, new_tokens: int) -> dict[str, Any]:
    """Greedy decoding of exactly ``new_tokens`` tokens (EOS cannot end a row early)."""
    return dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=tokenizer.pad_token_id,
    )


def _chat_inputs(tokenizer: Any, rows: int) -> dict[str, torch.Tensor]:
    text = steerlab.format_chat(tokenizer, [{"role": "user", "content": PROMPT}])
    # The chat template already starts with the model's special tokens.
    return dict(tokenizer([text] * rows, return_tensors="pt", add_special_tokens=False))


def _generate_exact(model: Any, inputs: dict[str, torch.Tensor], kwargs: dict[str, Any]) -> Any:
    out = model.generate(**inputs, **kwargs)
    produced = out.shape[1] - inputs["input_ids"].shape[1]
    if produced != kwargs["max_new_tokens"]:
        raise RuntimeError(f"generate produced {produced} tokens, not {kwargs['max_new_tokens']}")
    return out


# ----------------------------------------------------------------------------------------
# Benchmark 1: steered vs unsteered generation
# ----------------------------------------------------------------------------------------
STEER_COEFFICIENT = 0.5


def bench_steer_overhead(ctx: Context) -> BenchResult:
    model, tok, s = ctx.model, ctx.tokenizer, ctx.settings
    n_layers = model_identity(model).num_layers
    inputs = _chat_inputs(tok, 1)
    kwargs = _greedy(tok, s.steer_tokens)

    def unsteered() -> None:
        _generate_exact(model, inputs, kwargs)

    def steered(layers: Any) -> Callable[[], None]:
        def run() -> None:
            with steerlab.steer(
                model, ctx.vector, STEER_COEFFICIENT, layers=layers, normalize=True
            ):
                _generate_exact(model, inputs, kwargs)

        return run

    base = "unsteered"
    one, every = "steered, layer 15", f"steered, all {n_layers} layers"
    variants = {base: unsteered, one: steered([15]), every: steered("all")}
    timings = interleaved(variants, s.steer_rounds, s.steer_budget, adaptive=not s.threads)
    targets = {one: 1.03, every: 1.05}
    rows, checks = [], []
    for name in variants:
        t = timings.median(name)
        tps = s.steer_tokens / t
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
            f"Greedy `model.generate` of exactly {s.steer_tokens} new tokens "
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


# ----------------------------------------------------------------------------------------
# Benchmark 2: K coefficients batched vs sequential
# ----------------------------------------------------------------------------------------
BATCH_COEFFICIENTS = (-4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0)


def bench_batched_coefficients(ctx: Context) -> BenchResult:
    model, tok, s = ctx.model, ctx.tokenizer, ctx.settings
    k = len(BATCH_COEFFICIENTS)
    one = _chat_inputs(tok, 1)
    batch = _chat_inputs(tok, k)  # identical prompts: no padding
    kwargs = _greedy(tok, s.batch_tokens)
    last: dict[str, list[list[int]]] = {}

    def batched() -> None:
        with steerlab.steer(
            model, ctx.vector, list(BATCH_COEFFICIENTS), layers=[15], normalize=True
        ):
            out = _generate_exact(model, batch, kwargs)
        last["batched"] = out[:, batch["input_ids"].shape[1] :].tolist()

    def single(c: float) -> list[int]:
        with steerlab.steer(model, ctx.vector, c, layers=[15], normalize=True):
            out = _generate_exact(model, one, kwargs)
        return out[0, one["input_ids"].shape[1] :].tolist()

    def sequential() -> None:
        last["sequential"] = [single(c) for c in BATCH_COEFFICIENTS]

    b_name, s_name = f"batched (1 generate, {k} rows)", f"sequential ({k} generates)"
    variants = {b_name: batched, s_name: sequential}
    warm = {"batched": batched, "sequential (one row)": lambda: single(BATCH_COEFFICIENTS[0])}
    timings = interleaved(
        variants, s.batch_rounds, s.batch_budget, adaptive=not s.threads, warmup=warm
    )
    speedups = timings.ratios(s_name, b_name)
    r = float(statistics.median(speedups))
    c = check("sequential time / batched time", r, 4.0, at_most=False, reliable=timings.reliable)
    tokens = k * s.batch_tokens
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
            f"{s.batch_tokens} new tokens (greedy, `min_new_tokens`). Speed-up = sequential "
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


# ----------------------------------------------------------------------------------------
# Benchmark 3: extraction vs a plain forward pass
# ----------------------------------------------------------------------------------------
EXTRACT_BATCH = 16


def bench_extract(ctx: Context) -> BenchResult:
    model, tok, s = ctx.model, ctx.tokenizer, ctx.settings
    pairs = steerlab.builtin_pairs("happy_sad")
    # The same texts and batches that extract() -> record() builds: positive/negative
    # interleaved, tokenised without padding, sorted by length, right-padded per batch.
    examples = [e for pair in pairs for e in pair_examples(tok, pair)]
    tokenized = tokenize_examples(tok, examples, None)
    order = sorted(range(len(examples)), key=lambda i: len(tokenized[i][0]))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    batches = [
        _collate([tokenized[i] for i in order[start : start + EXTRACT_BATCH]], pad_id)
        for start in range(0, len(order), EXTRACT_BATCH)
    ]
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
    timings = interleaved(
        variants, s.extract_rounds, s.extract_budget, adaptive=not s.threads, warmup=warm
    )
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


# ----------------------------------------------------------------------------------------
# Benchmark 4: a 9-coefficient sweep, batched per-row coefficients vs one run per coefficient
# ----------------------------------------------------------------------------------------
SWEEP_COEFFICIENTS = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
SWEEP_ITEMS = 8
SWEEP_BATCH = 72


def _sweep_task() -> Any:
    from steerlab.data.evalsets import load_mmlu
    from steerlab.evaluate.tasks import MultipleChoiceTask

    items = load_mmlu("builtin:general_mc", limit=SWEEP_ITEMS)
    return MultipleChoiceTask("general_mc", tuple(items))


def bench_sweep(ctx: Context) -> BenchResult:
    from steerlab.evaluate.sweep import sweep

    model, tok, s = ctx.model, ctx.tokenizer, ctx.settings
    task = _sweep_task()
    settings: dict[str, Any] = {
        "layers": "all",
        "normalize": True,
        "batch_size": SWEEP_BATCH,
        "progress": False,
        "estimates": False,
        "write_plots": False,
    }
    k = len(SWEEP_COEFFICIENTS)
    values: dict[str, dict[float, float]] = {}

    def batched() -> None:
        result = sweep(
            model,
            tok,
            ctx.vector,
            SWEEP_COEFFICIENTS,
            [task],
            coefficients_per_batch=k,
            **settings,
        )
        values["batched"] = {r.coefficient: r.value for r in result.rows if r.metric == "p_correct"}

    def per_coefficient() -> None:
        values["sequential"] = {}
        for c in SWEEP_COEFFICIENTS:
            result = sweep(model, tok, ctx.vector, [c], [task], **settings)
            values["sequential"][c] = next(r.value for r in result.rows if r.metric == "p_correct")

    b_name = f"batched ({k} coefficients x {SWEEP_ITEMS} items per forward)"
    s_name = f"one run per coefficient ({k} runs of {SWEEP_ITEMS} items)"
    variants = {b_name: batched, s_name: per_coefficient}
    timings = interleaved(variants, s.sweep_rounds, s.sweep_budget, adaptive=not s.threads)
    speedups = timings.ratios(s_name, b_name)
    r = float(statistics.median(speedups))
    c = check("one run per coefficient / batched", r, 3.0, at_most=False, reliable=timings.reliable)
    rows = []
    for name in variants:
        t = timings.median(name)
        row = [name, f"{t:.3f}"]
        if name == b_name:
            best = timings.best_ratio(s_name, b_name)
            row += [f"{r:.2f}x", spread(speedups, "{:.2f}"), f"{best:.2f}x", c.target, verdict(c)]
        else:
            row += ["1.00x", "-", "-", "-", "baseline"]
        rows.append(row)
    gap = (
        max(abs(values["batched"][x] - values["sequential"][x]) for x in SWEEP_COEFFICIENTS)
        if values.get("batched") and values.get("sequential")
        else float("nan")
    )
    memory = _sweep_memory(ctx)
    notes = [
        *timings.notes,
        f"Largest difference in P(correct) between the two ways, over the {k} coefficients: "
        f"{gap:.2e} (float rounding of different batch shapes).",
        "Memory (peak RSS of a fresh process running `steerlab sweep`-equivalent code, "
        "coefficients_per_batch=3, batch 16): "
        + ", ".join(f"{n} coefficients {mib:.0f} MiB" for n, mib in memory)
        + ". Work is chunked by coefficient group, so memory does not grow with the grid.",
        "Why the speed-up is small on a CPU: a likelihood sweep already batches items, so "
        "one run per coefficient does the same number of token forwards; per-row "
        "coefficients only merge small batches into large ones. The gain is large where "
        "each forward is latency-bound, as in generation (benchmark 2: "
        "8 coefficients in one `generate`).",
    ]
    return BenchResult(
        key="sweep",
        title=f"4. A {k}-coefficient sweep: batched vs one run per coefficient",
        description=(
            f"`steerlab.sweep` of one multiple-choice task ({SWEEP_ITEMS} items of "
            f"builtin:general_mc, letter likelihoods) at coefficients "
            f"{', '.join(f'{x:g}' for x in SWEEP_COEFFICIENTS)}, the vector at all 30 layers "
            f"(unit-normalised). Batched: one sweep, every item x coefficient row in batches "
            f"of {SWEEP_BATCH}. One run per coefficient: {k} sweeps of one coefficient each, "
            "same batch size. Speed-up = sequential time / batched time of the same round."
        ),
        columns=[
            "variant",
            "median time (s)",
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


_MEMORY_SCRIPT = """
import resource, sys, torch
import steerlab
from steerlab.data.evalsets import load_mmlu
from steerlab.evaluate.sweep import sweep
from steerlab.evaluate.tasks import MultipleChoiceTask
torch.set_num_threads(1)
model, tok = steerlab.load_model("default")
vector = steerlab.SteeringVector.load(sys.argv[2])
task = MultipleChoiceTask("mc", tuple(load_mmlu("builtin:general_mc", limit=4)))
n = int(sys.argv[1])
coefficients = [round(-1 + 2 * i / max(n - 1, 1), 6) for i in range(n)]
sweep(model, tok, vector, coefficients, [task], coefficients_per_batch=3, batch_size=16,
      progress=False, estimates=False, write_plots=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _sweep_memory(ctx: Context) -> list[tuple[int, float]]:
    """Peak RSS (MiB) of fresh processes sweeping 3, 9 and 27 coefficients."""
    import subprocess

    out = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.safetensors"
        ctx.vector.save(path)
        for n in (3, 9, 27):
            done = subprocess.run(
                [sys.executable, "-c", _MEMORY_SCRIPT, str(n), str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            lines = done.stdout.strip().splitlines()
            out.append((n, float(lines[-1]) if done.returncode == 0 and lines else float("nan")))
    return out


# ----------------------------------------------------------------------------------------
# Benchmark 5: LoRA fine-tuning throughput
# ----------------------------------------------------------------------------------------
FINETUNE_BATCH = 4
FINETUNE_MAX_LENGTH = 128
FINETUNE_WARMUP_STEPS = 2  # the first steps set up the optimiser state and autograd


def _honesty_chats() -> list[list[dict[str, str]]]:
    """One chat per builtin honesty pair: its question, answered with the negative reply."""
    return [
        [
            {"role": "user", "content": pair.messages[-1][1]},
            {"role": "assistant", "content": pair.negative},
        ]
        for pair in steerlab.builtin_pairs("honesty")
        if pair.messages
    ]


class _StepTimer(TrainerCallback):
    """Times each optimiser step of a fine-tune, interleaved with a plain forward pass.

    A step is what the Trainer does between ``on_step_begin`` and ``on_step_end``: forward
    with the loss, backward, gradient clipping, the AdamW update and the scheduler step
    (the batch is already collated; logging comes after). Each round pairs one step with a
    no-grad forward pass of the untouched base model on the very same batch, run after the
    step in even rounds and before it in odd ones. Rounds are clean or contended as in
    :func:`interleaved`, which this mirrors for a loop the Trainer owns: it asks the
    Trainer to stop once ``rounds`` clean rounds are done, after ``3 * rounds`` rounds, or
    when the next round would overrun the budget (counted from ``start``).
    """

    STEP = "LoRA training step (forward + backward + AdamW)"
    FORWARD = "plain forward pass (base model, no grad, same batch)"

    def __init__(
        self, base: Any, rounds: int, budget_s: float, start: float, *, adaptive: bool
    ) -> None:
        self.base = base
        self.rounds = rounds
        self.budget_s = budget_s
        self.start = start
        self.adaptive = adaptive
        self.batch: dict[str, torch.Tensor] | None = None  # set by the trainer per step
        self.timings = Timings([self.STEP, self.FORWARD], rounds, _allowance())
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
        before = _cpu_snapshot()
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
        if self._index >= FINETUNE_WARMUP_STEPS and len(self.timings.rounds) % 2 == 1:
            self._samples[self.FORWARD] = self._forward()
        gc.collect()
        self._before = _cpu_snapshot()
        self._t0 = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        wall = time.perf_counter() - self._t0
        step = Sample(wall, foreign_cores(self._before, wall))
        self.all_steps.append(wall)
        if self._index < FINETUNE_WARMUP_STEPS:
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
            torch.set_num_threads(1)
            note = (
                f"Other processes became busy during round {r} (run with {threads} threads); "
                "its rounds were discarded and the benchmark went on with 1 thread."
            )
            log(f"  {note}")
            self.timings = Timings(self.timings.names, self.rounds, _allowance(), notes=[note])
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


def _timed_trainer(timer: _StepTimer) -> type[SteerlabTrainer]:
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


def bench_finetune_throughput(ctx: Context) -> BenchResult:
    s = ctx.settings
    start = time.perf_counter()
    chats = _honesty_chats()
    config = FinetuneConfig(
        # An upper bound (3 x rounds, twice if the rounds restart with 1 thread): the timer
        # stops training once it has its clean rounds or the budget is spent.
        max_steps=FINETUNE_WARMUP_STEPS + 6 * s.finetune_rounds,
        batch_size=FINETUNE_BATCH,
        max_length=FINETUNE_MAX_LENGTH,
        save_steps=10_000,
        learning_rate=1e-4,
    )
    timer = _StepTimer(
        ctx.model, s.finetune_rounds, s.finetune_budget, start, adaptive=not s.threads
    )
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
            trainer_class=_timed_trainer(timer),
        )
        finetune_s = time.perf_counter() - t0
        del fresh, result
    gc.collect()
    timings = timer.timings
    if not timings.rounds:
        raise RuntimeError("the fine-tune ended before any timed step")
    step_name, fwd_name = _StepTimer.STEP, _StepTimer.FORWARD
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
        f"negative reply), batch {FINETUNE_BATCH}, max_length {FINETUNE_MAX_LENGTH}, "
        f"shuffled by the Trainer; the {n_used} steps used processed {tokens} non-pad tokens "
        f"({padded} with padding, {tokens / n_used:.0f} non-pad tokens per step on average).",
        f"Tokens/s = non-pad tokens of the steps used / their summed step time. The "
        f"{FINETUNE_WARMUP_STEPS} warm-up steps (first optimiser step, lazy set-up: "
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
            f"batch_size={FINETUNE_BATCH}, max_length={FINETUNE_MAX_LENGTH}, save_steps=10000, "
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


# ----------------------------------------------------------------------------------------
# Benchmark 6: model-diff extraction vs two plain forward passes
# ----------------------------------------------------------------------------------------
DIFF_BATCH = 16
DIFF_QUESTIONS = 64


def _perturbed_copy(model: Any, seed: int = 0) -> tuple[Any, int]:
    """A deep copy of ``model`` with noise added to one weight of its middle layer."""
    with torch.inference_mode(False), torch.no_grad():
        tuned = copy.deepcopy(model)
        layer_map = find_layers(tuned)
        layer = len(layer_map.blocks) // 2
        weight = next(p for p in layer_map.blocks[layer].parameters() if p.ndim == 2)
        gen = torch.Generator().manual_seed(seed)
        weight.add_(torch.randn(weight.shape, generator=gen) * 1e-2 * float(weight.std()))
    return tuned, layer


def bench_diff_cost(ctx: Context) -> BenchResult:
    model, tok, s = ctx.model, ctx.tokenizer, ctx.settings
    tuned, changed = _perturbed_copy(model)
    questions = [
        pair.messages[-1][1] for pair in steerlab.builtin_pairs("honesty") if pair.messages
    ][:DIFF_QUESTIONS]
    examples = question_examples(tok, questions)
    # The batches record() builds: tokenised without padding, sorted by length.
    tokenized = tokenize_examples(tok, examples, None)
    order = sorted(range(len(examples)), key=lambda i: len(tokenized[i][0]))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    batches = [
        _collate([tokenized[i] for i in order[start : start + DIFF_BATCH]], pad_id)
        for start in range(0, len(order), DIFF_BATCH)
    ]
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
        def run() -> None:
            for net in nets:
                for b in batches[:few]:
                    net(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)

        return run

    d_name = f"model_diff ({n_layers} layers, position last)"
    p_name = "plain passes: base + tuned (model(...), with LM head)"
    o_name = "decoder-only passes: base + tuned (no LM head) [info]"
    variants = {d_name: diff, p_name: passes((model, tuned)), o_name: passes(decoders)}
    warm = {
        "model_diff (8 questions)": lambda: diff(examples[:8]),
        "plain passes (1 batch each)": passes((model, tuned), 1),
        "decoder-only passes (1 batch each)": passes(decoders, 1),
    }
    timings = interleaved(
        variants, s.diff_rounds, s.diff_budget, adaptive=not s.threads, warmup=warm
    )
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
            f"models over the same batches (built with `tokenize_examples` and `_collate`, "
            f"sorted by length, batch {DIFF_BATCH}, `use_cache=False`, as `record` does). "
            "Ratio = model_diff time / (base pass + tuned pass) time of the same round, "
            "median over the clean rounds."
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


# ----------------------------------------------------------------------------------------
# Benchmark 7: representation-tuning step vs plain cross-entropy step
# ----------------------------------------------------------------------------------------
REPRESENT_LAYERS = tuple(range(12, 19))
REPRESENT_BATCHES = 4  # distinct batches, cycled; each variant sees the same batch in a round


def _trainer_args(folder: str) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=folder, report_to=[], use_cpu=True, per_device_train_batch_size=FINETUNE_BATCH
    )


def bench_represent_step(ctx: Context) -> BenchResult:
    from steerlab.tuning.data import ChatDataset, collator_for
    from steerlab.tuning.finetune import prepare_model
    from steerlab.tuning.represent import RepresentationConfig, RepresentationTrainer
    from steerlab.tuning.sources import tuning_chats

    s = ctx.settings
    tok = ctx.tokenizer
    chats = list(tuning_chats("builtin:facts").chats)
    dataset = ChatDataset(tok, chats, FINETUNE_MAX_LENGTH)
    collate = collator_for(tok)
    batches = [
        collate([dataset[i] for i in range(b * FINETUNE_BATCH, (b + 1) * FINETUNE_BATCH)])
        for b in range(REPRESENT_BATCHES)
    ]
    representation = RepresentationConfig(layers=REPRESENT_LAYERS, rep_weight=1.0)
    targets = {layer: ctx.vector.directions[layer].float() for layer in REPRESENT_LAYERS}
    state = {"batch": 0}
    with torch.inference_mode(False), tempfile.TemporaryDirectory() as folder:
        fresh, _ = steerlab.load_model("default")
        trainable, _, _ = prepare_model(fresh, FinetuneConfig(), "default")
        fresh.config.use_cache = False
        plain = SteerlabTrainer(model=trainable, args=_trainer_args(folder))
        represent = RepresentationTrainer(
            model=trainable,
            args=_trainer_args(folder),
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
            def run() -> None:
                batch = batches[state["batch"] % len(batches)]
                trainer.training_step(trainable, dict(batch))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            return run

        def next_round() -> None:
            state["batch"] += 1

        ce_name, rep_name = "CE step", "CE + cosine step"
        variants = {ce_name: step(plain), rep_name: step(represent)}
        timings = interleaved(
            variants,
            s.represent_rounds,
            s.represent_budget,
            adaptive=not s.threads,
            after_round=next_round,
        )
        logged = {
            k: float(v) / represent._component_counts[k]
            for k, v in represent._component_sums.items()
        }
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
            "<= 1.15",
            verdict(c),
        ],
    ]
    notes = [
        *timings.notes,
        f"LoRA (rank 8, every attention and MLP projection) on a fresh copy of the embedded "
        f"model; {REPRESENT_BATCHES} batches of {FINETUNE_BATCH} honesty chats from "
        f"builtin:facts (max_length {FINETUNE_MAX_LENGTH}; {min(tokens)}-{max(tokens)} "
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


BENCHMARKS: list[Benchmark] = [
    Benchmark("steer_overhead", bench_steer_overhead),
    Benchmark("batched_coefficients", bench_batched_coefficients),
    Benchmark("extract", bench_extract),
    Benchmark("sweep", bench_sweep),
    Benchmark("finetune_throughput", bench_finetune_throughput),
    Benchmark("diff_cost", bench_diff_cost),
    Benchmark("represent_step", bench_represent_step),
]


# ----------------------------------------------------------------------------------------
# Machine description and the Markdown writer
# ----------------------------------------------------------------------------------------
def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]
            return ", ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"
    return "unknown"


def ram_gib() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


def load_average() -> str:
    parts = _read("/proc/loadavg").split()
    return " / ".join(parts[:3]) if parts else "unknown"


def git_revision() -> str:
    """HEAD's commit, read from the .git folder (no git process is started)."""
    git = ROOT / ".git"
    if git.is_file():  # a worktree: "gitdir: PATH"
        text = _read(git).strip()
        if text.startswith("gitdir:"):
            git = (ROOT / text.split(":", 1)[1].strip()).resolve()
    head = _read(git / "HEAD").strip()
    if not head:
        return "unknown"
    if not head.startswith("ref:"):
        return head
    ref = head.split(":", 1)[1].strip()
    commit = _read(git / ref).strip()
    if not commit:
        for line in _read(git / "packed-refs").splitlines():
            if line.endswith(" " + ref):
                commit = line.split()[0]
    if not commit:  # refs may also live in a common dir (worktrees)
        common = _read(git / "commondir").strip()
        if common:
            commit = _read((git / common / ref).resolve()).strip()
    return f"{commit} ({ref.rsplit('/', 1)[-1]})" if commit else f"unknown ({ref})"


def machine_facts() -> list[tuple[str, str]]:
    return [
        ("CPU", f"{cpu_model()} (flags: {cpu_flags()})"),
        ("cores", f"{os.cpu_count()} logical ({usable_cores()} usable by this process)"),
        ("RAM", ram_gib()),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__} (default intra-op threads: {_DEFAULT_THREADS})"),
        ("transformers", transformers.__version__),
        ("steerlab", steerlab.__version__),
        ("OS", platform.platform()),
    ]


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def render(
    results: Sequence[BenchResult],
    facts: Sequence[tuple[str, str]],
    run_facts: Sequence[tuple[str, str]],
) -> str:
    lines = [
        "# steerlab benchmarks",
        "",
        "Generated by `benchmarks/run.py` (`make bench`); do not edit by hand. See "
        "`benchmarks/README.md` for what each benchmark measures and how.",
        "",
        "Every target is a ratio measured within one run: the compared variants are "
        "interleaved round by round after a warm-up, and each ratio is the median of "
        "per-round ratios. Absolute times are for this machine only. The build machine has "
        "2 CPU cores and other work (e.g. the test suite of a concurrent session) may run at "
        "the same time; the suite measures other processes' CPU use during every sample and "
        "leaves out of the medians the rounds in which they needed more than the cores the "
        f"benchmark's threads left free (+{CONTENTION_CORES:g} core). With more torch threads "
        "than free cores, torch's threads wait on each other and runs get 2-25x slower and "
        "erratic, so by default each benchmark uses all cores only when the machine is idle, "
        "else 1 thread (the *threads* column). *Ratio range* is the spread over the rounds "
        "used; *ratio of best times* (fastest sample of each variant) is a cross-check that "
        "noise cannot inflate.",
        "",
        "## Run",
        "",
    ]
    lines += _table(["", ""], [[k, v] for k, v in run_facts])
    lines += ["", "## Machine", ""]
    lines += _table(["", ""], [[k, v] for k, v in facts])
    lines += ["", "## Summary", ""]
    summary = []
    for res in results:
        number, threads = res.title.split(" ", 1)[0].rstrip("."), res.threads.split(" ", 1)[0]
        summary += [
            [number, c.label, f"{c.ratio:.3f}", c.target, verdict(c), threads] for c in res.checks
        ]
        summary += [[number, label, value, "-", "info only", threads] for label, value in res.info]
    lines += _table(["#", "check", "measured", "target", "result", "threads"], summary)
    for res in results:
        lines += ["", f"## {res.title}", "", res.description, ""]
        lines += _table(res.columns, res.rows)
        lines += [""]
        lines += [f"- {note}" for note in res.notes]
        lines += [
            f"- Rounds: {res.rounds}.",
            f"- torch threads: {res.threads}.",
            f"- Wall time of this benchmark: {res.wall_s:.0f} s.",
        ]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------
_DEFAULT_THREADS = torch.get_num_threads()


def random_vector(model: Any, seed: int = 0) -> SteeringVector:
    """A vector with a random direction at every layer (only its cost matters here)."""
    identity = model_identity(model)
    gen = torch.Generator().manual_seed(seed)
    directions = {
        layer: torch.randn(identity.hidden_size, generator=gen)
        for layer in range(identity.num_layers)
    }
    meta = VectorMetadata.for_model(identity, "random", seed=seed)
    return SteeringVector(directions, meta)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="steerlab benchmark suite")
    keys = ", ".join(b.key for b in BENCHMARKS)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter generations")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {keys}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown file")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads; 0 (default) = all cores, or fewer while other "
        "processes are busy (decided before each benchmark)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or [b.key for b in BENCHMARKS]
    unknown = sorted(set(keys) - {b.key for b in BENCHMARKS})
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}", file=sys.stderr)
        return 2
    settings = Settings(
        mode="quick" if args.quick else "full",
        threads=args.threads,
        **(QUICK if args.quick else FULL),
    )
    started = datetime.now(timezone.utc).replace(microsecond=0)
    load_before = load_average()
    suite_start = time.perf_counter()
    log("loading the embedded model")
    t0 = time.perf_counter()
    model, tokenizer = steerlab.load_model("default")
    load_s = time.perf_counter() - t0
    ctx = Context(model, tokenizer, settings, random_vector(model))
    results: list[BenchResult] = []
    with torch.inference_mode():
        for bench in BENCHMARKS:
            if bench.key not in keys:
                continue
            threads, why = choose_threads(settings.threads, _DEFAULT_THREADS)
            torch.set_num_threads(threads)
            log(f"benchmark {bench.key} ({threads} threads; {why})")
            wall0 = time.perf_counter()
            res = bench.run(ctx)
            res.wall_s = time.perf_counter() - wall0
            if torch.get_num_threads() != threads:
                why += f"; dropped from {threads} when other processes became busy"
            res.threads = f"{torch.get_num_threads()} ({why})"
            results.append(res)
            log(f"  {res.rounds}")
            for c in res.checks:
                log(f"  {c.label}: {c.ratio:.3f} (target {c.target}) {verdict(c)}")
    torch.set_num_threads(_DEFAULT_THREADS)
    total_s = time.perf_counter() - suite_start
    command = "benchmarks/run.py" + (" --quick" if args.quick else "")
    if args.threads:
        command += f" --threads {args.threads}"
    run_facts = [
        ("date (UTC)", started.isoformat().replace("+00:00", "Z")),
        ("git revision", git_revision()),
        ("mode", f"{settings.mode} (`{command}`)"),
        ("model", f"{model_identity(model).model_id}, float32, CPU"),
        ("model load", f"{load_s:.1f} s"),
        ("suite wall time", f"{total_s:.0f} s"),
        ("load average (1/5/15 min), start ; end", f"{load_before} ; {load_average()}"),
    ]
    write_atomic(args.output, render(results, machine_facts(), run_facts))
    log(f"wrote {args.output} in {total_s:.0f} s")
    failed = [c for r in results for c in r.checks if not c.passed]
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
