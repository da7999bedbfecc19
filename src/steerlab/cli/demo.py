"""``steerlab demo``: the core loop on the embedded model (runs :func:`steerlab.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import ModelOpt, console, friendly_errors


@friendly_errors
def demo(
    model: ModelOpt = "default",
    coefficient: Annotated[
        float, typer.Option(help="Steering strength as a fraction of the activation norm.")
    ] = 0.05,
    layers: Annotated[str, typer.Option(help="Layers to steer.")] = "12-18",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 40,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for artifacts.")] = Path(
        "demo-output"
    ),
) -> None:
    """Extract a mood vector on the embedded model and show steered generations."""
    from steerlab.demo import run_demo

    run_demo(
        model=model,
        coefficient=coefficient,
        layers=layers,
        max_new_tokens=max_new_tokens,
        output=output,
        console=console,
    )
