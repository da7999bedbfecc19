"""The benchmark harness and report writer on a trivial benchmark (no real benchmark runs)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the ``benchmarks`` package lives at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks import harness, report  # noqa: E402


def _sleepy(seconds: float):
    def call() -> None:
        time.sleep(seconds)

    return call


def _trivial(bound: float):
    """A benchmark timing two sleeps, with one target ``slow / fast <= bound``."""

    def run(ctx: harness.Context) -> report.BenchResult:
        variants = {"fast": _sleepy(0.002), "slow": _sleepy(0.004)}
        timings = harness.interleaved(variants, ctx.plan, adaptive=ctx.adaptive)
        ratios = timings.ratios("slow", "fast")
        r = sorted(ratios)[len(ratios) // 2]
        c = report.check("slow / fast", r, bound, at_most=True, reliable=timings.reliable)
        return report.BenchResult(
            key="trivial",
            title="1. Two sleeps",
            description="Sleeps of 2 ms and 4 ms.",
            columns=["variant", "ratio range", "result"],
            rows=[["slow", harness.spread(ratios), report.verdict(c)]],
            checks=[c],
            notes=timings.notes,
            info=[("fast median (s)", f"{timings.median('fast'):.4f}")],
            rounds=timings.describe(),
        )

    full, quick = harness.Plan(rounds=2, budget_s=10.0), harness.Plan(rounds=1, budget_s=5.0)
    return harness.Benchmark(
        "trivial", run, full=full, quick=quick, doc="Two sleeps.\n\nTarget: none."
    )


def test_interleaved_rotates_the_order_each_round():
    calls: list[str] = []
    variants = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    timings = harness.interleaved(variants, harness.Plan(rounds=3, budget_s=60.0), adaptive=False)
    assert calls[:3] == ["a", "b", "c"]  # the warm-up
    assert calls[3:12] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert 3 <= len(timings.rounds) <= 9
    assert all(set(r) == {"a", "b", "c"} for r in timings.rounds)
    assert len(timings.ratios("a", "b")) == len(timings.used)


def test_main_writes_the_report(llama, tmp_path):
    out = tmp_path / "b.md"
    args = ["--threads", "1", "--output", str(out)]
    assert harness.main([_trivial(100.0)], args, load=lambda: llama) == 0
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == "# steerlab benchmarks"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## Run", "## Machine", "## Summary", "## 1. Two sleeps"]
    assert "| # | check | measured | target | result | threads |" in lines
    assert any(line.startswith("| 1 | slow / fast | ") and "<= 100" in line for line in lines)
    assert any(line.startswith("| 1 | fast median (s) | ") for line in lines)
    assert "| mode | full (`benchmarks/run.py --threads 1`) |" in lines
    assert "- torch threads: 1 (set with --threads)." in lines
    assert any(line.startswith("- Rounds: ") for line in lines)
    assert any(line.startswith("- Wall time of this benchmark: ") for line in lines)
    assert text.endswith("|\n") or text.endswith(".\n")


def test_strict_fails_on_a_missed_target(llama, tmp_path):
    out = tmp_path / "b.md"
    args = ["--quick", "--threads", "1", "--output", str(out), "--strict"]
    assert harness.main([_trivial(0.01)], args, load=lambda: llama) == 1
    assert "**FAIL**" in out.read_text()


def test_unknown_benchmark_and_list_load_no_model(tmp_path, capsys):
    def no_model():
        raise AssertionError("the model must not be loaded")

    out = tmp_path / "b.md"
    bench = _trivial(1.0)
    assert harness.main([bench], ["--only", "nope", "--output", str(out)], load=no_model) == 2
    assert not out.exists()
    assert harness.main([bench], ["--list"], load=no_model) == 0
    assert "trivial: Two sleeps." in capsys.readouterr().out


def test_the_suite_declares_one_module_per_benchmark():
    from benchmarks.run import BENCHMARKS

    keys = [b.key for b in BENCHMARKS]
    assert len(keys) == len(set(keys)) == 10
    for bench in BENCHMARKS:
        assert bench.run.__module__ == f"benchmarks.bench_{bench.key}"
        assert "arget" in bench.doc  # says what it measures and its target (or "No target")
        assert bench.quick.rounds <= bench.full.rounds
        assert bench.quick.budget_s <= bench.full.budget_s


@pytest.mark.parametrize("values, text", [([1.0], "n/a (1 round)"), ([1.5, 1.0], "1.000-1.500")])
def test_spread(values, text):
    assert harness.spread(values) == text


def test_sections_of_other_scripts_survive_a_rewrite(tmp_path):
    from benchmarks.report import kept_sections, update_section, write_report

    path = tmp_path / "BENCHMARKS.md"
    write_report(path, "# Benchmarks\n\nfirst run\n")
    update_section(path, "parity", "## Parity\n\ncosine 1.0\n")
    update_section(path, "gibberish", "## Gibberish\n\nr = 0.5\n")
    update_section(path, "parity", "## Parity\n\ncosine 0.9999999\n")  # replaced in place
    write_report(path, "# Benchmarks\n\nsecond run\n")
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nsecond run\n")
    assert "first run" not in text and "cosine 1.0\n" not in text
    assert list(kept_sections(text)) == ["parity", "gibberish"]
    assert "cosine 0.9999999" in kept_sections(text)["parity"]
