"""``steerlab report``: rebuild a run folder's self-contained HTML report from its results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import friendly_errors
from steerlab.report.html import write_report


@friendly_errors
def report(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Run folder (the -o DIR of `steerlab run`).", metavar="DIR", show_default=False
        ),
    ],
) -> None:
    """Rebuild DIR/report.html from the run's finished results and print its path.

    Reads DIR/run.json and each finished stage's stage.json; needs no model and runs
    nothing. Stages that have not finished are shown as pending or failed.
    """
    typer.echo(str(write_report(run_dir)))
