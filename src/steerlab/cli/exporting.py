"""``steerlab export gguf`` and ``steerlab import gguf``: control vectors in and out."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from steerlab.cli.common import (
    ModelOpt,
    NormalizeOpt,
    ScaleByNormOpt,
    auto_coefficient,
    check_output,
    console,
    friendly_errors,
    parse_coefficient,
    print_note,
    steering_scale,
)

EXPORT_HELP = "Write a steering vector in another tool's format (gguf: llama.cpp)."
IMPORT_HELP = "Read a vector another tool wrote (gguf: llama.cpp, repeng, EasySteer)."


@friendly_errors
def export_gguf(
    vector: Annotated[Path, typer.Argument(help="A steering vector .safetensors file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .gguf file.")],
    coefficient: Annotated[
        str,
        typer.Option(
            help="Strength baked into the numbers, in --scale units; 'auto' / '-auto': the "
            "positive / negative coefficient `steerlab calibrate --write` stored (with its "
            "scale and layers). llama.cpp's --control-vector-scaled FILE S multiplies by S."
        ),
    ],
    layers: Annotated[
        str | None,
        typer.Option(
            help="Layers to export, e.g. 12-18 (default: all the vector has but 0, which "
            "llama.cpp never steers)."
        ),
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            help="What --coefficient is measured in: norm (default: a fraction of each "
            "layer's activation norm recorded in the vector, as generate and fold), unit (the "
            "unit direction) or vector (as extracted: --coefficient 1 --scale vector writes "
            "the vector itself).",
        ),
    ] = None,
    normalize: NormalizeOpt = None,
    scale_by_norm: ScaleByNormOpt = None,
    operator: Annotated[
        str, typer.Option(help="Only add: a control vector adds a fixed vector.")
    ] = "add",
    positions: Annotated[
        str, typer.Option(help="Only all: llama.cpp steers every position.")
    ] = "all",
) -> None:
    """Write a llama.cpp control vector (GGUF), coefficient and scale baked in.

    direction.N is added to the output of decoder block N (0-based) at every
    position: steerlab's layer N. llama.cpp never steers block 0.
    Use: llama-cli -m MODEL.gguf --control-vector OUT.gguf
    """
    from steerlab.layers import parse_layers
    from steerlab.vector import SteeringVector

    choice = parse_coefficient(coefficient)
    chosen_scale = steering_scale("export gguf", scale, normalize, scale_by_norm, default="norm")
    check_output(output)
    steering = SteeringVector.load(vector)
    if isinstance(choice, str):  # auto / -auto: the calibration's coefficient, scale, layers
        value, chosen_scale, layers = auto_coefficient(choice, steering, vector, scale, layers)
    else:
        value = choice
    selected = None if layers is None else parse_layers(layers, steering.metadata.num_layers)
    steering.to_gguf(
        output,
        value,
        layers=selected,
        scale=chosen_scale,
        operator=operator,
        positions=positions,
    )
    coefficient_value = value
    exported = tuple(layer for layer in steering.layers if layer != 0)
    if selected is not None:
        exported = tuple(sorted(set(selected)))
    elif 0 in steering.layers:
        print_note("layer 0 left out: llama.cpp never steers the output of block 0")
    warn_if_strong(steering, exported, coefficient_value, chosen_scale)
    console.print(
        f"wrote {output}: direction.N for layers {_span(exported)} (hidden "
        f"{steering.metadata.hidden_size}), coefficient {coefficient_value:g} at scale "
        f"{chosen_scale} baked in; llama.cpp: --control-vector {output}",
        highlight=False,
        soft_wrap=True,
    )


@friendly_errors
def import_gguf(
    file: Annotated[Path, typer.Argument(help="A GGUF control vector.")],
    model: ModelOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file.")],
    layer_offset: Annotated[
        int,
        typer.Option(
            help="Add K to every direction.N's layer. 0 (default): N is the block whose output "
            "llama.cpp steers (files from repeng, EasySteer, steerlab and llama.cpp's "
            "behaviour). -1: where llama.cpp's cvector-generator read it (it names the "
            "direction read at block i direction.(i+1))."
        ),
    ] = 0,
) -> None:
    """Read a GGUF control vector (llama.cpp, repeng, EasySteer) as a steerlab vector.

    direction.N becomes layer N + --layer-offset (the output of block N when
    the offset is 0); the hidden size and layers are checked against --model.
    """
    from steerlab.gguf_vectors import ModelHintWarning, read_control_vector
    from steerlab.models import load_model
    from steerlab.vector import SteeringVector

    check_output(output)
    read_control_vector(file)  # a bad file fails before the model loads
    loaded, _ = load_model(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelHintWarning)
        steering = SteeringVector.from_gguf(file, loaded, layer_offset=layer_offset)
    for warning in caught:
        if issubclass(warning.category, ModelHintWarning):
            print_note(str(warning.message).replace("scale='norm'", "--scale norm"))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    steering.save(output)
    console.print(
        f"wrote {output}: {steering.metadata.method} vector, layers {_span(steering.layers)} "
        f"(hidden {steering.metadata.hidden_size}) from {file}",
        highlight=False,
        soft_wrap=True,
    )


def warn_if_strong(steering: Any, layers: tuple[int, ...], coefficient: float, scale: str) -> None:
    """The note ``steer`` would give when the baked pushes add up to gibberish strength:
    llama.cpp adds them without a word."""
    from steerlab.errors import SteeringStrengthWarning
    from steerlab.steer import warn_if_too_strong

    norms = steering.activation_norms or {}
    pushes = {}
    for layer in layers:
        length = 1.0 if scale in ("unit", "norm") else float(steering[layer].norm())
        pushes[layer] = (
            abs(coefficient) * length * (norms.get(layer, 0.0) if "norm" in scale else 1)
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SteeringStrengthWarning)
        warn_if_too_strong(pushes, norms)
    for warning in caught:
        print_note(str(warning.message).replace("scale='norm'", "--scale norm"))


def _span(layers: tuple[int, ...]) -> str:
    """``12-18`` for a run of layers, else ``3,5,7``."""
    if len(layers) > 2 and list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(str(layer) for layer in layers)
