"""steerlab's benchmark suite: a harness, a report writer and one module per benchmark.

Run it with ``benchmarks/run.py`` (see ``benchmarks/README.md``).
"""
