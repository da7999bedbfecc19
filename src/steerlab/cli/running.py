"""``steerlab run`` and ``steerlab schema``: an experiment written down once, run with caching."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import check_output, console, friendly_errors


@friendly_errors
def run(
    spec: Annotated[Path, typer.Argument(help="The experiment spec (YAML).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder (a rerun continues it).")
    ],
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only this stage (and the unfinished ones it reads). Repeatable."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan (cached / will run, in order); run nothing.")
    ] = False,
) -> None:
    """Run an experiment spec: each stage once, cached by content, then report.html.

    Under accelerate launch or torchrun, the sweep, matrix, eval, finetune and tune stages
    share their work among the processes and the other stages run on the main process; the
    main process alone prints and writes the records and the report.
    """
    from steerlab.runner import run_experiment

    run_experiment(spec, output, only=only, dry_run=dry_run, console=console)


@friendly_errors
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it to this file.")
    ] = None,
) -> None:
    """Print the JSON Schema of experiment specs (for editors to complete and check them)."""
    from steerlab.provenance import atomic_write
    from steerlab.runner import json_schema

    if output is not None:
        check_output(output)
    text = json.dumps(json_schema(), indent=2)
    if output is None:
        typer.echo(text)
        return
    with atomic_write(output) as handle:
        handle.write(text + "\n")
    console.print(f"wrote {output}")
