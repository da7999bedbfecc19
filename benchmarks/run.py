"""Entry point of steerlab's benchmark suite: the list of benchmarks, run by the harness.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full suite (about 7-9 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # fewer rounds, shorter generations (a few min)
    .venv/bin/python benchmarks/run.py --list     # the benchmarks' keys (loads no model)
    .venv/bin/python benchmarks/run.py --only steer_overhead,extract --threads 1

One benchmark alone: ``--only KEY`` (add ``--output /tmp/b.md`` to leave ``BENCHMARKS.md``
as it is: the report is always written whole, with the benchmarks of this run only).
``python -m benchmarks.run`` from the repository root works too.

The timing (:mod:`benchmarks.harness`), the report (:mod:`benchmarks.report`) and each
benchmark (``benchmarks/bench_KEY.py``) live in their own modules; adding a benchmark is a
new module with a ``BENCHMARK`` and one line in :data:`BENCHMARKS`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    bench_batched_coefficients,
    bench_calibrate,
    bench_diff_cost,
    bench_extract,
    bench_finetune_throughput,
    bench_fold,
    bench_represent_step,
    bench_serve_batching,
    bench_steer_overhead,
    bench_sweep,
)
from benchmarks.harness import Benchmark, main

# In the report's order (each title starts with its number here).
BENCHMARKS: list[Benchmark] = [
    bench_steer_overhead.BENCHMARK,
    bench_batched_coefficients.BENCHMARK,
    bench_extract.BENCHMARK,
    bench_sweep.BENCHMARK,
    bench_finetune_throughput.BENCHMARK,
    bench_diff_cost.BENCHMARK,
    bench_represent_step.BENCHMARK,
    bench_calibrate.BENCHMARK,
    bench_fold.BENCHMARK,
    bench_serve_batching.BENCHMARK,
]

if __name__ == "__main__":
    sys.exit(main(BENCHMARKS))
