"""``steerlab calibrate``: recommend a steering coefficient per sign from a quick sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    check_number,
    check_output,
    check_vector_fits,
    console,
    friendly_errors,
    parse_device_map,
    print_note,
)


@friendly_errors
def calibrate(
    vector: Annotated[Path, typer.Option("--vector", "-v", help="Steering vector file.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for calibration.json and the plot.")
    ],
    model: ModelOpt = "default",
    layers: Annotated[
        str | None, typer.Option(help="Layers to steer (default: all the vector has).")
    ] = None,
    behavior: Annotated[
        str | None,
        typer.Option(
            "--behavior",
            "-b",
            help="KIND:PATH of the behaviour to measure (pairs:FILE, caa:FILE...); default: "
            "held-out pairs of the vector's own data.",
        ),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(help="Fluency texts: a file (a text a line, or JSONL) or builtin:NAME."),
    ] = None,
    scale: Annotated[str, typer.Option(help="Coefficients in: norm, unit or vector.")] = "norm",
    perplexity_bound: Annotated[
        float,
        typer.Option(help="Largest perplexity a recommendation may cause, x the unsteered one."),
    ] = 1.5,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Store the recommendation in the vector file (for generate --coefficients auto).",
        ),
    ] = False,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
) -> None:
    """Recommend a steering coefficient per sign: a quick sweep of behaviour and fluency."""
    from steerlab.evaluate.calibrate import calibrate as run_calibrate
    from steerlab.models import check_model_reference, load_model
    from steerlab.vector import SteeringVector

    check_number(perplexity_bound, "--perplexity-bound")
    parsed_device_map = parse_device_map(device_map)
    check_output(output, folder=True)
    if write:
        check_output(vector, "--vector")
    check_model_reference(model)
    steering = SteeringVector.load(vector)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=parsed_device_map)
    check_vector_fits(steering, vector, loaded)
    result = run_calibrate(
        loaded,
        tokenizer,
        steering,
        output,
        layers=layers,
        behavior=behavior,
        text=text,
        scale=scale,
        perplexity_bound=perplexity_bound,
        progress=True,
    )
    console.print(result.table())
    console.print(result.summary(), highlight=False)
    console.print(f"wrote {output}/calibration.json and calibration.png/.svg")
    if write:
        result.apply_to(steering).save(vector)
        print_note(f"stored the recommendation in {vector}: generate --coefficients auto uses it")
