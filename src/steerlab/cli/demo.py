"""``steerlab demo``: the core loop on the embedded model (runs :func:`steerlab.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import console, friendly_errors


@friendly_errors
def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder (a rerun continues it).")
    ] = Path("demo-output"),
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan (cached / will run, in order); run nothing.")
    ] = False,
) -> None:
    """Run the demo spec (examples/demo.yaml) on the embedded model: all three lines, a report."""
    from steerlab.demo import run_demo

    run_demo(output=output, console=console, dry_run=dry_run)
