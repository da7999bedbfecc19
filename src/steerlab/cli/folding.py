"""``steerlab fold``: steering folded into a plain checkpoint or a rank-1 LoRA adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    LayersPathOpt,
    ModelOpt,
    NormalizeOpt,
    ScaleByNormOpt,
    auto_coefficient,
    check_output,
    check_vector_fits,
    console,
    friendly_errors,
    model_reference,
    parse_coefficient,
    parse_device_map,
    steering_scale,
)
from steerlab.errors import SpecError
from steerlab.validation import check_choice

FORMATS = ("checkpoint", "peft")


@friendly_errors
def fold(
    vector: Annotated[Path, typer.Option("--vector", "-v", help="Steering vector file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="New (or empty) folder to write.")],
    model: ModelOpt = "default",
    coefficient: Annotated[
        str | None,
        typer.Option(
            help="add: the coefficient (required), in --scale units, or 'auto' / '-auto' (the "
            "positive / negative one `steerlab calibrate --write` stored, with its scale and "
            "layers); ablate: 1 (default) removes the direction."
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="add: layers to steer, e.g. 12-18 (default: all the vector has); ablate: the "
            "one layer whose direction is removed from every residual write."
        ),
    ] = None,
    operator: Annotated[str, typer.Option(help="add or ablate.")] = "add",
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            help="add: what --coefficient is measured in: norm (default: a fraction of each "
            "layer's activation norm), unit (the unit direction) or vector (as extracted).",
        ),
    ] = None,
    normalize: NormalizeOpt = None,
    scale_by_norm: ScaleByNormOpt = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="checkpoint (a save_pretrained folder any server loads) or peft (ablate "
            "only: a rank-1 LoRA adapter for per-request use).",
        ),
    ] = "checkpoint",
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Fold steering into the weights: a checkpoint that steers with no steerlab code.

    add at layer L becomes a bias on block L's MLP output projection (Llama's mlp_bias
    switch is set); ablate removes one direction from every matrix that writes to the
    residual stream (steer(..., sites="everywhere")). Load the result with
    AutoModelForCausalLM.from_pretrained(DIR), vLLM or llama.cpp's converter; a peft
    adapter with PeftModel.from_pretrained(base, DIR) or vLLM's --lora-modules.
    """
    from steerlab.export.adapter import fold_adapter
    from steerlab.export.checkpoint import check_new_folder
    from steerlab.export.fold import check_one_layer, fold_spec
    from steerlab.export.fold import fold as fold_model
    from steerlab.generate import with_norms
    from steerlab.models import load_model
    from steerlab.models.devices import offloaded_parameters
    from steerlab.steer import SteerSpec
    from steerlab.vector import SteeringVector

    check_choice(output_format, "--format", FORMATS)
    check_choice(operator, "--operator", ("add", "ablate", "clamp"))
    if coefficient is None:
        if operator == "add":
            raise SpecError(
                "--operator add needs --coefficient (e.g. --coefficient 0.1, or auto after "
                "`steerlab calibrate --write`)"
            )
        coefficient = "1"
    choice = parse_coefficient(coefficient)
    chosen_scale = steering_scale("fold", scale, normalize, scale_by_norm, default="norm")
    if isinstance(choice, str):
        if operator != "add":
            raise SpecError(f"--coefficient {choice} is a calibrated add strength: use add")
        steering = SteeringVector.load(vector)
        value, chosen_scale, layers = auto_coefficient(choice, steering, vector, scale, layers)
    else:
        value = choice
    if output_format == "peft" and operator != "ablate":
        raise SpecError(
            "--format peft implements --operator ablate only ('add' is a bias, which LoRA "
            "cannot add): use --format checkpoint"
        )
    # Everything the spec can refuse (clamp...) is refused before the model loads.
    spec = fold_spec(
        SteerSpec(value, layers=layers, operator=operator, scale=chosen_scale)  # type: ignore[arg-type]
    )
    check_output(output, "--output", folder=True)
    parsed_device_map = parse_device_map(device_map)
    check_new_folder(output, "--output")
    steering = SteeringVector.load(vector)
    if spec.operator == "ablate":  # before the model loads
        check_one_layer(steering, spec, steering.metadata.num_layers)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=parsed_device_map)
    check_vector_fits(steering, vector, loaded)
    offloaded = offloaded_parameters(loaded)
    if offloaded:
        # Folding edits weights in place; offloaded ones are loaded only inside a forward pass.
        raise SpecError(
            f"--device-map offloads {len(offloaded)} weights (e.g. {offloaded[0]}) to the CPU "
            "or disk, and folding edits every weight in place: give a map with room on its "
            "devices for all of them, or leave --device-map out"
        )
    if spec.operator == "add" and spec.scale_by_norm:
        # As generate does: norms the vector lacks are measured, with a one-line notice.
        steering = with_norms(loaded, tokenizer, steering, spec.layers, layers_path)
    if output_format == "peft":
        fold_adapter(
            loaded,
            steering,
            spec,
            output_dir=output,
            layers_path=layers_path,
            base_model_name_or_path=model_reference(model),
            vector_file=vector,
        )
        console.print(f"wrote a rank-1 LoRA ablation adapter to {output}", highlight=False)
        console.print(
            f"load: PeftModel.from_pretrained(base, {str(output)!r}) — unmerged if the base "
            "ties its embeddings",
            highlight=False,
        )
        return
    folded = fold_model(
        loaded,
        steering,
        spec,
        layers_path=layers_path,
        output_dir=output,
        tokenizer=tokenizer,
        vector_file=vector,
    )
    record = folded.steerlab_fold
    what = (
        f"add {spec.coefficient:g} (scale {spec.scale}) at layers "
        f"{','.join(map(str, record['layers']))}"
        if spec.operator == "add"
        else f"ablate layer {record['layers'][0]}'s direction everywhere"
    )
    console.print(f"folded {what} into {output}", highlight=False)
    console.print(f"load: AutoModelForCausalLM.from_pretrained({str(output)!r})", highlight=False)
