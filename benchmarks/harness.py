"""The benchmark harness: ratio timings within one run, machine facts, and the runner's CLI.

Every benchmark compares variants *within one run*: after a warm-up the variants are
interleaved (their order rotated each round), each round yields one ratio, and the reported
ratio is the median over rounds (:func:`interleaved`, :class:`Timings`). During every sample
the harness also measures how much CPU other processes used (from ``/proc/stat``); a round
in which another process took a noticeable share of a core is marked contended and left
out of the medians, and further rounds are run while the benchmark's time budget lasts.
Absolute numbers depend on the machine; the ratios are what the targets are about.

A benchmark is a :class:`Benchmark`: a key, a function ``(Context) -> BenchResult`` and a
:class:`Plan` (rounds, time budget) for the full and the quick mode. :func:`main` runs a
list of them on the embedded model and hands the results to :mod:`benchmarks.report`.
Benchmarks whose loop another library owns (the fine-tune's Trainer) keep the same
:class:`Timings` from a callback, using :func:`cpu_snapshot`, :func:`foreign_cores` and
:func:`allowance` the way :func:`interleaved` does.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
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
from benchmarks.report import BenchResult, render, verdict, write_report
from steerlab.models import model_identity
from steerlab.provenance import git_revision
from steerlab.vector import SteeringVector, VectorMetadata

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"
# A round is "contended" when other processes used at least this many cores during any of
# its samples (an idle machine shows ~0.00-0.06: kernel threads, the shell). With all
# cores in use, even ~0.25 of a core made a 2-thread generate ~1.6x slower.
CONTENTION_CORES = 0.15
# torch's intra-op thread count before any benchmark changed it.
DEFAULT_THREADS = torch.get_num_threads()


# ----------------------------------------------------------------------------------------
# Benchmarks, their plans and their results
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """How long one benchmark measures in one mode.

    Attributes:
        rounds: clean rounds wanted (at most ``3 * rounds`` are run).
        budget_s: time budget in seconds, warm-up included.
        new_tokens: tokens generated per row (generation benchmarks only).
    """

    rounds: int
    budget_s: float
    new_tokens: int = 0


@dataclass
class Context:
    """What the runner hands to a benchmark: the shared model, a vector and its plan.

    Attributes:
        model: the embedded model (float32, CPU), shared by every benchmark: never train it.
        tokenizer: its tokenizer.
        vector: a random vector with a direction at every layer (only its cost matters).
        plan: this benchmark's rounds and budget in the chosen mode.
        threads: torch threads asked for with ``--threads`` (0: chosen from the load).
    """

    model: Any
    tokenizer: Any
    vector: SteeringVector
    plan: Plan
    threads: int = 0

    @property
    def adaptive(self) -> bool:
        """Whether a contended multi-threaded round may drop torch to one thread."""
        return not self.threads


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the suite.

    Attributes:
        key: its name on the command line (``--only KEY``).
        run: measures and returns the result to render.
        full: the plan of a full run.
        quick: the plan of a ``--quick`` run.
        doc: what it measures and its target (its module's docstring).
    """

    key: str
    run: Callable[[Context], BenchResult]
    full: Plan
    quick: Plan
    doc: str = ""

    @property
    def summary(self) -> str:
        """The first line of :attr:`doc`."""
        lines = self.doc.strip().splitlines()
        return lines[0] if lines else ""


# ----------------------------------------------------------------------------------------
# CPU accounting: how much of the machine other processes used
# ----------------------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot() -> tuple[float, float] | None:
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
    after = cpu_snapshot()
    if before is None or after is None or wall <= 0:
        return math.nan
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / wall)


def idle_probe(seconds: float = 1.0) -> float:
    """Cores used by other processes while this one sleeps for ``seconds``."""
    before = cpu_snapshot()
    start = time.perf_counter()
    time.sleep(seconds)
    return foreign_cores(before, time.perf_counter() - start)


def usable_cores() -> int:
    """The cores this process may run on."""
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


def allowance() -> float:
    """Other processes' CPU use (cores) that a round tolerates with torch's thread count."""
    return max(0, usable_cores() - torch.get_num_threads()) + CONTENTION_CORES


# ----------------------------------------------------------------------------------------
# Interleaved timing
# ----------------------------------------------------------------------------------------
def log(message: str) -> None:
    """A time-stamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sample:
    """One timed call of one variant."""

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
        """Whether other processes stayed under the allowance during every sample."""
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
        """Per-round ratios ``num`` time / ``den`` time over the rounds used."""
        return [r[num].wall / r[den].wall for r in self.used]

    def best_ratio(self, num: str, den: str) -> float:
        """Ratio of the fastest samples over all rounds (noise only ever adds time)."""
        return min(r[num].wall for r in self.rounds) / min(r[den].wall for r in self.rounds)

    def describe(self) -> str:
        """One sentence on the rounds: how many were clean, and the machine's load."""
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


def dropped_to_one_thread(round_number: int, threads: int) -> str:
    """Drop torch to one thread after a contended round; returns the note saying so."""
    torch.set_num_threads(1)
    note = (
        f"Other processes became busy during round {round_number} (run with {threads} "
        "threads); its rounds were discarded and the benchmark went on with 1 thread."
    )
    log(f"  {note}")
    return note


def interleaved(
    variants: dict[str, Callable[[], Any]],
    plan: Plan,
    *,
    adaptive: bool,
    warmup: dict[str, Callable[[], Any]] | None = None,
    after_round: Callable[[], Any] | None = None,
) -> Timings:
    """Time the variants in interleaved rounds until ``plan.rounds`` clean rounds or the budget.

    The order is rotated every round (and reversed in alternate cycles) so that no variant
    always runs first, last or after the same neighbour; slow drifts in machine load then
    hit every variant alike, and a per-round ratio cancels most of them. At least one round
    always runs; at most ``3 * plan.rounds``; ``after_round`` runs between rounds, untimed.
    With ``adaptive``, the first contended round run with several threads drops torch to one
    thread and starts the rounds afresh (all rounds of one benchmark use the same thread
    count).
    """
    rounds, budget_s = plan.rounds, plan.budget_s
    start = time.perf_counter()
    for name, fn in (warmup if warmup is not None else variants).items():
        log(f"  warm-up: {name}")
        fn()
    names = list(variants)
    timings = Timings(names, rounds, allowance())
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
            before = cpu_snapshot()
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
            note = dropped_to_one_thread(r + 1, threads)
            timings = Timings(names, rounds, allowance(), notes=[note])
            durations = []
    return timings


def spread(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """``min-max`` of per-round values, or a note when there was one round."""
    if len(values) < 2:
        return "n/a (1 round)"
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


# ----------------------------------------------------------------------------------------
# Machine and run facts
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
    """The vector-instruction flags that matter for float32 matmuls."""
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


def revision() -> str:
    """``COMMIT (BRANCH)`` of the checkout, from :func:`steerlab.provenance.git_revision`."""
    commit = git_revision()
    if commit is None:
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return commit
    branch = out.stdout.strip()
    return f"{commit} ({branch})" if out.returncode == 0 and branch else commit


def machine_facts() -> list[tuple[str, str]]:
    """The machine and library versions, as (label, value) rows."""
    return [
        ("CPU", f"{cpu_model()} (flags: {cpu_flags()})"),
        ("cores", f"{os.cpu_count()} logical ({usable_cores()} usable by this process)"),
        ("RAM", ram_gib()),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__} (default intra-op threads: {DEFAULT_THREADS})"),
        ("transformers", transformers.__version__),
        ("steerlab", steerlab.__version__),
        ("OS", platform.platform()),
    ]


# ----------------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------------
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


def parse_args(benchmarks: Sequence[Benchmark], argv: Sequence[str] | None) -> argparse.Namespace:
    """The runner's options (see ``benchmarks/README.md``)."""
    parser = argparse.ArgumentParser(description="steerlab benchmark suite")
    keys = ", ".join(b.key for b in benchmarks)
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
    parser.add_argument(
        "--list", action="store_true", help="list the benchmarks and exit (loads no model)"
    )
    return parser.parse_args(argv)


def run_one(bench: Benchmark, ctx: Context) -> BenchResult:
    """Run one benchmark with a thread count chosen for the machine's load right now."""
    threads, why = choose_threads(ctx.threads, DEFAULT_THREADS)
    torch.set_num_threads(threads)
    log(f"benchmark {bench.key} ({threads} threads; {why})")
    wall0 = time.perf_counter()
    res = bench.run(ctx)
    res.wall_s = time.perf_counter() - wall0
    if torch.get_num_threads() != threads:
        why += f"; dropped from {threads} when other processes became busy"
    res.threads = f"{torch.get_num_threads()} ({why})"
    log(f"  {res.rounds}")
    for c in res.checks:
        log(f"  {c.label}: {c.ratio:.3f} (target {c.target}) {verdict(c)}")
    return res


def load_embedded_model() -> tuple[Any, Any]:
    """The model every benchmark runs on: the embedded SmolLM2-135M-Instruct, float32, CPU."""
    return steerlab.load_model("default")


def main(
    benchmarks: Sequence[Benchmark],
    argv: Sequence[str] | None = None,
    *,
    load: Callable[[], tuple[Any, Any]] = load_embedded_model,
) -> int:
    """Run the chosen benchmarks and write the report; the exit status.

    Args:
        benchmarks: the suite, in the report's order.
        argv: the command line (default: ``sys.argv[1:]``).
        load: returns the shared (model, tokenizer); tests pass a tiny model.

    Returns:
        0, or 1 with ``--strict`` when a target was missed, or 2 for an unknown benchmark.
    """
    args = parse_args(benchmarks, argv)
    if args.list:
        for bench in benchmarks:
            print(f"{bench.key}: {bench.summary}")
        return 0
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or [b.key for b in benchmarks]
    unknown = sorted(set(keys) - {b.key for b in benchmarks})
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}", file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc).replace(microsecond=0)
    load_before = load_average()
    suite_start = time.perf_counter()
    log("loading the embedded model")
    t0 = time.perf_counter()
    model, tokenizer = load()
    load_s = time.perf_counter() - t0
    vector = random_vector(model)
    results: list[BenchResult] = []
    with torch.inference_mode():
        for bench in benchmarks:
            if bench.key in keys:
                plan = bench.quick if args.quick else bench.full
                ctx = Context(model, tokenizer, vector, plan, threads=args.threads)
                results.append(run_one(bench, ctx))
    torch.set_num_threads(DEFAULT_THREADS)
    total_s = time.perf_counter() - suite_start
    command = "benchmarks/run.py" + (" --quick" if args.quick else "")
    if args.threads:
        command += f" --threads {args.threads}"
    run_facts = [
        ("date (UTC)", started.isoformat().replace("+00:00", "Z")),
        ("git revision", revision()),
        ("mode", f"{'quick' if args.quick else 'full'} (`{command}`)"),
        ("model", f"{model_identity(model).model_id}, float32, CPU"),
        ("model load", f"{load_s:.1f} s"),
        ("suite wall time", f"{total_s:.0f} s"),
        ("load average (1/5/15 min), start ; end", f"{load_before} ; {load_average()}"),
    ]
    write_report(args.output, render(results, machine_facts(), run_facts, CONTENTION_CORES))
    log(f"wrote {args.output} in {total_s:.0f} s")
    failed = [c for r in results for c in r.checks if not c.passed]
    return 1 if failed and args.strict else 0
