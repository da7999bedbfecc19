"""steerlab benchmark suite: the core engine on the embedded SmolLM2-135M-Instruct model.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full suite (~5-6 minutes on 2 idle cores)
    .venv/bin/python benchmarks/run.py --quick    # fewer repetitions, shorter generations
    .venv/bin/python benchmarks/run.py --only steer_overhead,batched_coefficients

Every benchmark compares variants *within one run*: the variants are interleaved (their
order rotated each round), each round yields one ratio, and the reported ratio is the
median over rounds. Absolute numbers depend on the machine and on whatever else runs on
it; the ratios are what the targets are about. Results go to ``BENCHMARKS.md`` at the
repository root, written atomically (temporary file, then ``os.replace``).

Adding a benchmark: write a function ``(Context) -> BenchResult`` and append a
:class:`Benchmark` to ``BENCHMARKS``; the writer renders every result the same way.
"""

from __future__ import annotations

import argparse
import gc
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

import steerlab
from steerlab.data import pair_examples
from steerlab.models import model_identity
from steerlab.record import _collate, tokenize_examples
from steerlab.vector import SteeringVector, VectorMetadata

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"
PROMPT = "Tell me about your plans for the weekend, and what you are looking forward to."


# ----------------------------------------------------------------------------------------
# Settings, results and the benchmark registry
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Repetition counts and sizes; ``--quick`` trades precision for time."""

    mode: str
    steer_rounds: int  # benchmark 1: rounds of (unsteered, 1 layer, 30 layers)
    steer_tokens: int
    batch_rounds: int  # benchmark 2: rounds of (batched, sequential)
    batch_tokens: int
    extract_rounds: int  # benchmark 3: rounds of (extract, plain pass, decoder-only pass)
    threads: int


FULL = dict(steer_rounds=7, steer_tokens=64, batch_rounds=3, batch_tokens=64, extract_rounds=5)
QUICK = dict(steer_rounds=2, steer_tokens=32, batch_rounds=1, batch_tokens=32, extract_rounds=1)


@dataclass(frozen=True)
class Check:
    """One target: a measured ratio against a bound."""

    label: str
    ratio: float
    target: str  # e.g. "<= 1.03"
    passed: bool


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
    wall_s: float = 0.0
    cpu_per_wall: float = 0.0  # process CPU seconds per wall second while it ran


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


def check(label: str, ratio: float, bound: float, *, at_most: bool) -> Check:
    passed = ratio <= bound if at_most else ratio >= bound
    return Check(label, ratio, f"{'<=' if at_most else '>='} {bound:g}", passed)


def verdict(c: Check) -> str:
    return "PASS" if c.passed else "**FAIL**"


# ----------------------------------------------------------------------------------------
# Timing helpers
# ----------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def interleaved(
    variants: dict[str, Callable[[], Any]],
    rounds: int,
    *,
    warmup: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds per call of each variant, ``rounds`` samples each.

    The order of the variants is rotated every round (and reversed every other round) so that
    no variant always runs first, last or after the same neighbour; slow drifts in machine load
    then hit every variant alike, and a per-round ratio cancels most of them.
    """
    for name, fn in (warmup if warmup is not None else variants).items():
        log(f"  warm-up: {name}")
        fn()
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        order = names[k:] + names[:k]
        if (r // len(names)) % 2 == 1:
            order.reverse()
        for name in order:
            gc.collect()
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
        summary = ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names)
        log(f"  round {r + 1}/{rounds}: {summary}")
    return times


def round_ratios(times: dict[str, list[float]], num: str, den: str) -> list[float]:
    return [a / b for a, b in zip(times[num], times[den], strict=True)]


def med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    if len(values) < 2:
        return "n/a (1 round)"
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


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

    variants = {
        "unsteered": unsteered,
        "steered, layer 15": steered([15]),
        f"steered, all {n_layers} layers": steered("all"),
    }
    times = interleaved(variants, s.steer_rounds)
    base = "unsteered"
    targets = {"steered, layer 15": 1.03, f"steered, all {n_layers} layers": 1.05}
    rows, checks = [], []
    for name in variants:
        t = med(times[name])
        tps = s.steer_tokens / t
        if name == base:
            rows.append([name, f"{t:.3f}", f"{tps:.2f}", "1.000", "-", "-", "baseline"])
            continue
        ratios = round_ratios(times, name, base)
        r = med(ratios)
        c = check(f"{name}: time / unsteered time", r, targets[name], at_most=True)
        checks.append(c)
        rows.append(
            [
                name,
                f"{t:.3f}",
                f"{tps:.2f}",
                f"{r:.3f} ({(r - 1) * 100:+.1f}%)",
                spread(ratios),
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
            "normalize=True)` (operator `add`, positions `all`) with a random unit-norm vector "
            f"on every layer. {s.steer_rounds} interleaved rounds; ratio = steered time / "
            "unsteered time of the same round, median over rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "tokens/s",
            "time ratio (overhead)",
            "ratio range",
            "target",
            "result",
        ],
        rows=rows,
        checks=checks,
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

    variants = {"batched (1 generate, 8 rows)": batched, "sequential (8 generates)": sequential}
    warm = {"batched": batched, "sequential (one row)": lambda: single(BATCH_COEFFICIENTS[0])}
    times = interleaved(variants, s.batch_rounds, warmup=warm)
    b_name, s_name = list(variants)
    speedups = round_ratios(times, s_name, b_name)
    r = med(speedups)
    c = check("sequential time / batched time", r, 4.0, at_most=False)
    tokens = k * s.batch_tokens
    rows = []
    for name in variants:
        t = med(times[name])
        row = [name, f"{t:.3f}", f"{tokens / t:.1f}"]
        if name == b_name:
            row += [f"{r:.2f}x", spread(speedups, "{:.2f}"), c.target, verdict(c)]
        else:
            row += ["1.00x", "-", "-", "baseline"]
        rows.append(row)
    same = sum(
        a == b for a, b in zip(last.get("batched", []), last.get("sequential", []), strict=False)
    )
    notes = [
        f"Greedy continuations identical between the batched row and the sequential run "
        f"of the same coefficient: {same}/{k} rows (batched float32 matmuls may round "
        "differently; a mismatch is not a failure of this benchmark)."
    ]
    return BenchResult(
        key="batched_coefficients",
        title=f"2. K={k} coefficients: one batched generate vs {k} sequential generates",
        description=(
            f"Steering at layer 15 (`normalize=True`) with coefficients "
            f"{', '.join(f'{x:g}' for x in BATCH_COEFFICIENTS)}. Batched: one `model.generate` "
            f"over {k} copies of the chat prompt inside `steerlab.steer(..., coefficient=[{k} "
            f"values])` (one coefficient per row). Sequential: {k} batch-1 `generate` calls, "
            f"each inside `steerlab.steer(..., coefficient=c)`. Both produce exactly "
            f"{s.batch_tokens} new tokens per row (greedy, `min_new_tokens`). "
            f"{s.batch_rounds} interleaved rounds; speed-up = sequential time / batched time "
            "of the same round, median over rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "generated tokens/s (all rows)",
            "speed-up",
            "speed-up range",
            "target",
            "result",
        ],
        rows=rows,
        checks=[c],
        notes=notes,
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
    times = interleaved(variants, s.extract_rounds)
    ratios = round_ratios(times, e_name, p_name)
    r = med(ratios)
    c = check("extract time / plain forward time", r, 1.15, at_most=True)
    info = round_ratios(times, e_name, d_name)
    rows = []
    for name in variants:
        t = med(times[name])
        row = [name, f"{t:.3f}", f"{n_tokens / t:.0f}"]
        if name == e_name:
            row += [f"{r:.3f}", spread(ratios), c.target, verdict(c)]
        elif name == p_name:
            row += ["1.000", "-", "-", "baseline"]
        else:
            row += [f"extract / this: {med(info):.3f}", spread(info), "-", "info only"]
        rows.append(row)
    notes = [
        f"{len(pairs)} pairs = {len(examples)} texts, {len(batches)} batches of "
        f"{EXTRACT_BATCH}; {n_tokens} real tokens ({n_padded} with padding).",
        "`extract` includes rendering the chat template, tokenising (with offsets), the "
        "recording hooks, the reduction to the last token and the mean-difference maths; the "
        "baselines get pre-built batches. `extract` stops after the deepest requested layer "
        "and so never runs the final norm and the LM head (49152 x 576), which the plain "
        "pass does; the decoder-only row shows the ratio without that advantage.",
        "Both baselines pass `use_cache=False`, as `record` does, so that neither side "
        "builds a KV cache.",
    ]
    return BenchResult(
        key="extract",
        title=f"3. Extracting all {n_layers} layers vs a plain forward pass",
        description=(
            "`steerlab.extract(model, tok, builtin_pairs('happy_sad'), method='mean_diff', "
            f"layers='all', batch_size={EXTRACT_BATCH}, progress=False)` vs plain forward "
            "passes over the same texts in the same batches. "
            f"{s.extract_rounds} interleaved rounds; ratio = extract time / plain-pass time of "
            "the same round, median over rounds."
        ),
        columns=[
            "variant",
            "median time (s)",
            "real tokens/s",
            "time ratio",
            "ratio range",
            "target",
            "result",
        ],
        rows=rows,
        checks=[c],
        notes=notes,
    )


BENCHMARKS: list[Benchmark] = [
    Benchmark("steer_overhead", bench_steer_overhead),
    Benchmark("batched_coefficients", bench_batched_coefficients),
    Benchmark("extract", bench_extract),
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


def machine_facts(threads: int) -> list[tuple[str, str]]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return [
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} logical ({usable} usable by this process)"),
        ("RAM", ram_gib()),
        ("torch threads", str(threads)),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
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
        "`benchmarks/README.md` for what each benchmark measures.",
        "",
        "The targets are ratios measured within one run: the compared variants are "
        "interleaved round by round and each ratio is the median of per-round ratios. "
        "Absolute times and throughputs are for this machine only. The build machine has "
        "2 CPU cores and may be running other work (e.g. the test suite) at the same time; "
        "that adds noise, which the interleaving and medians reduce but cannot remove. "
        "The *ratio range* columns show the spread over rounds.",
        "",
        "## Run",
        "",
    ]
    lines += _table(["", ""], [[k, v] for k, v in run_facts])
    lines += ["", "## Machine", ""]
    lines += _table(["", ""], [[k, v] for k, v in facts])
    lines += ["", "## Summary", ""]
    summary = [
        [res.title.split(" ", 1)[0].rstrip("."), c.label, f"{c.ratio:.3f}", c.target, verdict(c)]
        for res in results
        for c in res.checks
    ]
    lines += _table(["#", "check", "measured", "target", "result"], summary)
    for res in results:
        lines += ["", f"## {res.title}", "", res.description, ""]
        lines += _table(res.columns, res.rows)
        lines += [""]
        lines += [f"- {note}" for note in res.notes]
        lines += [
            f"- Wall time of this benchmark: {res.wall_s:.0f} s; process CPU time per wall "
            f"second: {res.cpu_per_wall:.2f} (close to the thread count when the machine is "
            "otherwise idle; lower means other processes competed for the cores)."
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
def random_vector(model: Any, seed: int = 0) -> SteeringVector:
    identity = model_identity(model)
    gen = torch.Generator().manual_seed(seed)
    directions = {
        layer: torch.randn(identity.hidden_size, generator=gen)
        for layer in range(identity.num_layers)
    }
    meta = VectorMetadata.for_model(identity, "random", seed=seed)
    return SteeringVector(directions, meta)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter generations")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(b.key for b in BENCHMARKS)}"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    keys = [k for k in args.only.split(",") if k] or [b.key for b in BENCHMARKS]
    unknown = sorted(set(keys) - {b.key for b in BENCHMARKS})
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}", file=sys.stderr)
        return 2
    settings = Settings(
        mode="quick" if args.quick else "full",
        threads=torch.get_num_threads(),
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
            log(f"benchmark {bench.key}")
            wall0, cpu0 = time.perf_counter(), _cpu_seconds()
            res = bench.run(ctx)
            res.wall_s = time.perf_counter() - wall0
            res.cpu_per_wall = (_cpu_seconds() - cpu0) / max(res.wall_s, 1e-9)
            results.append(res)
            for c in res.checks:
                log(f"  {c.label}: {c.ratio:.3f} (target {c.target}) {verdict(c)}")
    total_s = time.perf_counter() - suite_start
    run_facts = [
        ("date (UTC)", started.isoformat().replace("+00:00", "Z")),
        ("git revision", git_revision()),
        ("mode", f"{settings.mode} (`benchmarks/run.py{' --quick' if args.quick else ''}`)"),
        ("model", f"{model_identity(model).model_id}, float32, CPU"),
        ("model load", f"{load_s:.1f} s"),
        ("suite wall time", f"{total_s:.0f} s"),
        ("load average (1/5/15 min) before / after", f"{load_before} ; {load_average()}"),
    ]
    text = render(results, machine_facts(settings.threads), run_facts)
    write_atomic(args.output, text)
    log(f"wrote {args.output} in {total_s:.0f} s")
    failed = [c for r in results for c in r.checks if not c.passed]
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
