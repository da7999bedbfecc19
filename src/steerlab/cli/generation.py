"""``steerlab generate``: continuations at several steering coefficients, batched in one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from steerlab.cli.common import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    LayersPathOpt,
    ModelOpt,
    NormalizeOpt,
    ScaleByNormOpt,
    ScaleOpt,
    calibrated,
    check_count,
    check_number,
    check_output,
    check_vector_fits,
    console,
    friendly_errors,
    parse_coefficients,
    parse_device_map,
    print_note,
    print_note_stderr,
    steering_scale,
)
from steerlab.errors import SpecError
from steerlab.provenance import atomic_write


@friendly_errors
def generate(
    prompts: Annotated[list[str], typer.Argument(help="One or more prompts.")],
    model: ModelOpt = "default",
    vector: Annotated[
        Path | None, typer.Option("--vector", "-v", help="Steering vector file.")
    ] = None,
    layers: Annotated[
        str | None, typer.Option(help="Layers to steer (default: all the vector has).")
    ] = None,
    coefficients: Annotated[
        str,
        typer.Option(
            help="Comma list (-0.3,0,0.3), start:stop:count (-0.4:0.4:9), or 'auto': the "
            "coefficients `steerlab calibrate --write` stored in the vector."
        ),
    ] = "0",
    operator: Annotated[str, typer.Option(help="add, ablate or clamp.")] = "add",
    scale: ScaleOpt = None,
    normalize: NormalizeOpt = None,
    scale_by_norm: ScaleByNormOpt = None,
    positions: Annotated[str, typer.Option(help="all, prompt or generated.")] = "all",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 48,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    raw: Annotated[bool, typer.Option(help="Do not apply the chat template.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write the generations to this file as JSON lines (prompt, "
            "coefficient, text).",
        ),
    ] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Generate continuations at several steering coefficients, batched in one run."""
    from steerlab.generate import generate as run_generate
    from steerlab.models import load_model
    from steerlab.steer import SteerSpec
    from steerlab.vector import SteeringVector

    auto = coefficients.strip().lower() == "auto"
    values = [] if auto else parse_coefficients(coefficients)
    note = print_note_stderr if as_json else print_note  # stdout stays JSON lines
    chosen_scale = steering_scale(
        "generate", scale, normalize, scale_by_norm, default="norm", note=note
    )
    # The spec checks the operator, positions and scale: bad ones fail before the model loads.
    spec = SteerSpec(operator=operator, positions=positions, scale=chosen_scale)  # type: ignore[arg-type]
    check_count(max_new_tokens, "--max-new-tokens")
    check_number(temperature, "--temperature")
    parsed_device_map = parse_device_map(device_map)
    if output is not None:
        check_output(output)
    if vector is None and layers is not None:
        raise SpecError(f"--layers {layers} steers nothing without a --vector")
    if vector is None and auto:
        raise SpecError("--coefficients auto reads the vector's calibration: give --vector")
    steering = SteeringVector.load(vector) if vector is not None else None
    if auto and steering is not None:
        values, chosen_scale, layers = calibrated(steering, vector, scale, layers, note)  # type: ignore[arg-type]
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=parsed_device_map)
    if steering is not None:
        check_vector_fits(steering, vector, loaded)  # type: ignore[arg-type]
    results = run_generate(
        loaded,
        tokenizer,
        prompts,
        steering,
        values,
        layers=layers,
        operator=spec.operator,
        positions=spec.positions,
        scale=chosen_scale,  # type: ignore[arg-type]
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        system=system,
        chat=not raw,
        layers_path=layers_path,
        progress=True,
    )
    rows = [
        {"prompt": item.prompt, "coefficient": item.coefficient, "text": item.text}
        for item in results
    ]
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    console.print(generations_table(results))


def generations_table(results: list[Any]) -> Table:
    """Generations as a table, one row per prompt and coefficient."""
    table = Table(show_lines=True)
    table.add_column("prompt", max_width=28)
    table.add_column("coef", justify="right")
    table.add_column("generation")
    for item in results:
        table.add_row(item.prompt, f"{item.coefficient:+g}", item.text)
    return table
