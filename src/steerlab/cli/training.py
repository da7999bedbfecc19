"""``steerlab finetune`` and ``steerlab tune``: train a model on chats, with or without a vector.

Both commands take the same training options (:class:`~steerlab.cli.common.TrainingOptions`,
one meaning per flag): ``--train-layers`` is the decoder layers to fine-tune fully (instead of
LoRA) in both; ``tune --rep-layers`` is the layers of the cosine loss. The old spellings
``finetune --layers`` (= ``--train-layers``) and ``tune --layers`` (= ``--rep-layers``) still
work, hidden from the help, with a one-line deprecation notice.

Under ``accelerate launch`` or ``torchrun`` (data parallel) every process runs the command:
``--batch-size`` is the global batch, each of the N processes takes ``batch-size / N`` of
it, so the loss curve is that of one process; only the main process prints and writes the
run folder. ``--device-map`` (model parallel, one process) is refused there.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from steerlab.cli.common import (
    TRAINING_DEFAULTS,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    LayersPathOpt,
    ModelOpt,
    TrainingOptions,
    check_number,
    check_output,
    check_vector_fits,
    console,
    deprecated_option,
    friendly_errors,
    model_reference,
    parse_device_map,
    training_options,
)
from steerlab.errors import SpecError

_SEVERAL_PROCESSES = (
    "\n\nUnder accelerate launch or torchrun (N processes, data parallel) --batch-size is "
    "the global batch: each process takes batch-size/N (a multiple of N), so the loss curve "
    "is the one of a single process with the same options."
)


@friendly_errors
@training_options
def finetune(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            "-d",
            help="Chats: a JSON list of message lists, or JSONL ({'messages': [...]} "
            "or a message list a line).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder (resumable; loadable later).")
    ],
    model: ModelOpt = "default",
    training: TrainingOptions = TRAINING_DEFAULTS,  # typer sees its fields as options
    merge: Annotated[
        bool, typer.Option(help="Also save a merged plain checkpoint in OUTPUT/merged.")
    ] = False,
    layers: Annotated[
        str | None,
        typer.Option("--layers", hidden=True, help="Deprecated spelling of --train-layers."),
    ] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Fine-tune a model on chats (loss on assistant replies only): LoRA or some layers."""
    from steerlab.data.chats import load_chats
    from steerlab.layers import find_layers
    from steerlab.models import load_model
    from steerlab.tuning import finetune as run_finetune

    train_layers = deprecated_option(
        "finetune", "--layers", "--train-layers", layers, training.train_layers
    )
    training = dataclasses.replace(training, train_layers=train_layers)
    config = training.finetune_config(merge=merge)  # bad values fail before anything loads
    training.check()
    placement = _placement(device, device_map, training.batch_size)
    check_output(output, folder=True)
    chats = load_chats(data, limit=training.limit)  # bad data fails before the model loads
    loaded, tokenizer = load_model(model, dtype=dtype, **placement)
    if training.train_layers is not None:
        chosen = find_layers(loaded, layers_path).resolve(training.train_layers)
        config = training.finetune_config(merge=merge, full_finetune_layers=tuple(chosen))
    result = run_finetune(
        loaded,
        tokenizer,
        chats,
        output,
        config,
        progress=True,
        resume=training.resume,
        base_model=model_reference(model),
        layers_path=layers_path,
    )
    if not _is_main_process():
        return
    how = (
        f"layers {','.join(map(str, result.trained_layers))}"
        if result.trained_layers
        else f"LoRA r={config.rank} on {','.join(result.target_modules)}"
    )
    resumed = f", resumed from {result.resumed_from.name}" if result.resumed_from else ""
    console.print(
        f"fine-tuned {model} ({how}) on {len(chats)} chats: {result.global_step} steps"
        f"{resumed}, final loss {result.final_loss:.4f}"
        + (f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else ""),
        highlight=False,
    )
    console.print(f"tuned model: {output} (steerlab load_model / --model {output})")
    if result.merged_dir is not None and result.merged_dir != output:
        console.print(f"merged checkpoint: {result.merged_dir}")
    console.print(f"loss log: {result.loss_log}; provenance: {result.provenance}")


@friendly_errors
@training_options
def tune(
    vector: Annotated[
        Path, typer.Option("--vector", "-v", help="Target steering vector (.safetensors).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder (resumable; loadable later).")
    ],
    model: ModelOpt = "default",
    rep_layers: Annotated[
        str | None,
        typer.Option(
            help="Layers whose activations the cosine loss pulls, e.g. 12-18 (default: all "
            "of the vector's layers)."
        ),
    ] = None,
    direction: Annotated[
        str, typer.Option(help="toward: pull activations to the vector; away: push them off.")
    ] = "toward",
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            help="True/false statements (CSV statement,label), contrastive pairs or "
            "chats; builtin:facts, builtin:honesty.",
        ),
    ] = "builtin:facts",
    rep_weight: Annotated[
        float, typer.Option(help="λ, the weight of the cosine loss (0: token loss only).")
    ] = 1.0,
    rep_only: Annotated[
        bool, typer.Option(help="Representation loss only (no token cross-entropy).")
    ] = False,
    positions: Annotated[
        str, typer.Option(help="Token positions of the cosine loss: all, answer or last.")
    ] = "all",
    layer_weights: Annotated[
        str | None, typer.Option(help="Comma list, one weight per --rep-layers layer.")
    ] = None,
    completions: Annotated[
        str | None,
        typer.Option(
            help="Statements: honest, dishonest or matching; pairs: honest/positive or "
            "dishonest/negative (default: honest toward, dishonest away)."
        ),
    ] = None,
    instructions: Annotated[
        str, typer.Option(help="Statements: both, honest, dishonest or none.")
    ] = "both",
    templates: Annotated[
        Path | None, typer.Option(help="JSON file overriding the statement prompt templates.")
    ] = None,
    include_held_out: Annotated[
        bool, typer.Option(help="Also train on the statements kept for evaluation.")
    ] = False,
    training: TrainingOptions = TRAINING_DEFAULTS,  # typer sees its fields as options
    layers: Annotated[
        str | None,
        typer.Option("--layers", hidden=True, help="Deprecated spelling of --rep-layers."),
    ] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Representation tuning: fine-tune with token loss + λ·(1 - cos(activation, ±vector))."""
    from steerlab.data.honesty import HonestyTemplates
    from steerlab.layers import find_layers
    from steerlab.models import load_model
    from steerlab.tuning import read_loss_log
    from steerlab.tuning.represent import RepresentationConfig
    from steerlab.tuning.represent import tune as run_tune
    from steerlab.tuning.sources import tuning_chats
    from steerlab.vector import SteeringVector

    rep_layers = deprecated_option("tune", "--layers", "--rep-layers", layers, rep_layers)
    check_number(rep_weight, "--rep-weight")
    config = training.finetune_config(merge=True)  # tune always writes a plain checkpoint
    training.check()
    placement = _placement(device, device_map, training.batch_size)
    check_output(output, folder=True)
    # Everything that can be checked without the model fails before it loads.
    target = SteeringVector.load(vector)
    # Direction, positions and weights are checked here, on the vector's layers; the chosen
    # layers replace them once the model is there to resolve --rep-layers.
    representation = RepresentationConfig(
        layers=tuple(target.layers),
        rep_weight=rep_weight,
        direction=direction,
        positions=positions,
        token_loss=not rep_only,
    )
    prompt_templates = HonestyTemplates.from_file(templates) if templates else None
    tuning_data = tuning_chats(
        data,
        completions=completions or default_completions(direction),
        instructions=instructions,
        templates=prompt_templates,
        include_held_out=include_held_out,
        limit=training.limit,
    )
    loaded, tokenizer = load_model(model, dtype=dtype, **placement)
    check_vector_fits(target, vector, loaded)
    layer_map = find_layers(loaded, layers_path)
    chosen = tuple(layer_map.resolve(rep_layers)) if rep_layers is not None else target.layers
    representation = dataclasses.replace(
        representation,
        layers=tuple(chosen),
        layer_weights=parse_layer_weights(layer_weights, len(chosen)),
    )
    if training.train_layers is not None:
        trained = tuple(layer_map.resolve(training.train_layers))
        config = training.finetune_config(merge=True, full_finetune_layers=trained)
    if _is_main_process():
        console.print(f"training data: {tuning_data.describe()}", highlight=False)
    result = run_tune(
        loaded,
        tokenizer,
        target,
        tuning_data,  # the run's provenance records the data source (eval's split)
        output,
        representation,
        config,
        progress=True,
        resume=training.resume,
        base_model=model_reference(model),
        layers_path=layers_path,
    )
    if _is_main_process():
        print_tune_summary(result, read_loss_log(result.loss_log), output)


# The docstrings are the commands' help; the note on several processes joins both.
finetune.__doc__ = (finetune.__doc__ or "") + _SEVERAL_PROCESSES
tune.__doc__ = (tune.__doc__ or "") + _SEVERAL_PROCESSES


def _launcher_world_size() -> int:
    """Processes started by accelerate launch / torchrun (``WORLD_SIZE``), else 1."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def _is_main_process() -> bool:
    """Whether this process prints (rank 0 of a launcher's group, or a lone process)."""
    return _launcher_world_size() == 1 or os.environ.get("RANK", "0") == "0"


def _placement(device: str | None, device_map: str | None, batch_size: int) -> dict[str, Any]:
    """``load_model``'s ``device`` / ``device_map`` for this process; refuses what cannot run.

    With several processes (data parallel) each one loads its model on its own GPU
    (``cuda:LOCAL_RANK``) unless ``--device`` says otherwise; a device map (model parallel,
    one process spreading the model over several devices) is refused there, and so is a
    ``--batch-size`` that the processes cannot share equally.
    """
    world = _launcher_world_size()
    parsed = parse_device_map(device_map)
    if world > 1:
        if parsed is not None:
            raise SpecError(
                f"--device-map spreads one model over devices in one process; with {world} "
                "processes (data parallel) leave it out"
            )
        if batch_size % world:
            raise SpecError(
                f"--batch-size {batch_size} is the global batch and does not split among "
                f"{world} processes; use a multiple of {world}"
            )
        if device is None:
            import torch

            if torch.cuda.is_available():
                device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    if parsed is not None:
        return {"device_map": parsed}
    return {"device": device}


def parse_layer_weights(text: str | None, n_layers: int) -> tuple[float, ...] | None:
    """``"1,1,2"`` -> (1.0, 1.0, 2.0), one weight per tuned layer; None -> None."""
    if text is None or not text.strip():
        return None
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise SpecError(f"--layer-weights {text!r}: expected comma-separated numbers") from None
    if len(weights) != n_layers:
        raise SpecError(
            f"--layer-weights {text!r} gives {len(weights)} weights for {n_layers} layers"
        )
    return weights


def default_completions(direction: str) -> str:
    """Completions that agree with the direction: honest toward honesty, dishonest away."""
    return "honest" if direction == "toward" else "dishonest"


def print_tune_summary(result: Any, rows: list[dict[str, Any]], output: Path) -> None:
    """Steps, loss parts at the first and last logged step, and where the model is."""
    train = [row for row in rows if "loss" in row]
    resumed = f", resumed from {result.resumed_from.name}" if result.resumed_from else ""
    console.print(f"tuned for {result.global_step} steps{resumed}", highlight=False)
    if train:
        first, last = train[0], train[-1]
        for key in ("loss", "ce_loss", "rep_loss", "cos_sim"):
            if key in first and key in last:
                console.print(
                    f"  {key:8s} step {first['step']}: {first[key]:.4f} -> "
                    f"step {last['step']}: {last[key]:.4f}",
                    highlight=False,
                )
    if result.eval_loss is not None:
        console.print(f"  validation loss {result.eval_loss:.4f}", highlight=False)
    console.print(f"tuned model: {output} (steerlab load_model / --model {output})")
    if result.merged_dir is not None:
        console.print(
            f"plain transformers checkpoint: {result.merged_dir} "
            "(AutoModelForCausalLM.from_pretrained, no steerlab needed)"
        )
    console.print(f"loss log: {result.loss_log}; provenance: {result.provenance}")
