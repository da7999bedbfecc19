"""``steerlab demo``: the three research lines in miniature on the embedded model.

The demo is an experiment spec, ``builtin:demo`` (the repository's ``examples/demo.yaml``):
a mood vector, steered generations, a coefficient sweep with the bound fits, a LoRA deception
fine-tune with its model-diff vector against the contrastive one, and representation tuning
on the honesty suite. :func:`run_demo` runs it with :func:`steerlab.runner.run_experiment`,
so the output folder is a run folder like any other: cached stages, ``report.html``.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from steerlab.runner import RunResult, run_experiment

DEMO_SPEC = "builtin:demo"


def run_demo(
    output: str | Path = Path("demo-output"),
    console: Console | None = None,
    dry_run: bool = False,
) -> RunResult:
    """Run the demo spec into ``output`` (a rerun reuses the stages it finished).

    Args:
        output: the run folder; ``output/report.html`` is the report.
        console: where progress goes (default: steerlab's log console).
        dry_run: print the plan only.

    Returns:
        The run's result (stage folders, statuses, the report's path).
    """
    return run_experiment(DEMO_SPEC, output, dry_run=dry_run, console=console)
