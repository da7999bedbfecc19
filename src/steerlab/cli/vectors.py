"""``steerlab extract``, ``info``, ``diff`` and ``compare``: make and inspect steering vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from steerlab.cli.common import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    LayersPathOpt,
    ModelOpt,
    check_count,
    check_output,
    console,
    friendly_errors,
    parse_device_map,
)
from steerlab.errors import SpecError

# The metadata rows `steerlab info` shows, in this order.
INFO_FIELDS = (
    "model_id",
    "model_type",
    "hidden_size",
    "num_layers",
    "method",
    "position",
    "n_examples",
    "data_sha256",
    "layers",
    "library_version",
    "git_revision",
    "created",
    "seed",
)


@friendly_errors
def extract(
    pairs: Annotated[
        str, typer.Option("--pairs", "-p", help="Pairs file (JSONL/JSON/CAA A/B) or builtin:NAME.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file.")],
    model: ModelOpt = "default",
    method: Annotated[
        str, typer.Option(help="mean_diff, pca_diff, pca_center or probe.")
    ] = "pca_diff",
    layers: Annotated[str, typer.Option(help="all, 15, 12-18 or 12,14,16.")] = "all",
    position: Annotated[
        str, typer.Option(help="last (last token) or mean (mean over the reply tokens).")
    ] = "last",
    limit: Annotated[int | None, typer.Option(help="Use only the first N pairs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    negate: Annotated[
        bool,
        typer.Option(
            "--negate", help="Point the vector the other way: toward the negative examples."
        ),
    ] = False,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Extract a steering vector from contrastive pairs."""
    from steerlab.data import load_pairs
    from steerlab.extract import METHODS
    from steerlab.extract import extract as run_extract
    from steerlab.models import load_model

    if method not in METHODS:
        raise SpecError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if position not in ("last", "mean"):
        raise SpecError(f"--position {position!r} is not one of last, mean")
    check_count(limit, "--limit")
    check_count(batch_size, "--batch-size")
    check_output(output)
    parsed_device_map = parse_device_map(device_map)
    data = load_pairs(pairs, limit=limit)  # read data first: bad input fails before loading
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=parsed_device_map)
    vector = run_extract(
        loaded,
        tokenizer,
        data,
        method=method,
        layers=layers,
        position=position,  # type: ignore[arg-type]
        batch_size=batch_size,
        seed=seed,
        layers_path=layers_path,
        progress=True,
    )
    if negate:
        vector = -vector  # exactly the vector of the swapped pairs, for mean_diff
    vector.save(output)
    console.print(
        f"wrote {output}: {vector.metadata.method} vector, layers "
        f"{vector.describe()['layers']}, {len(data)} pairs"
    )


@friendly_errors
def info(
    vector_file: Annotated[Path, typer.Argument(help="A steering vector .safetensors file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a steering vector's metadata and per-layer norms."""
    from steerlab.vector import SteeringVector

    vector = SteeringVector.load(vector_file)
    summary = vector.describe()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    table = Table(title=str(vector_file), show_header=False)
    for key in INFO_FIELDS:
        table.add_row(key, str(summary.get(key)))
    console.print(table)
    norms = Table(title="per-layer norms")
    norms.add_column("layer", justify="right")
    norms.add_column("vector norm", justify="right")
    norms.add_column("activation norm", justify="right")
    activation = vector.activation_norms or {}
    for layer, norm in vector.norms().items():
        act = activation.get(layer)
        norms.add_row(str(layer), f"{norm:.4g}", "-" if act is None else f"{act:.4g}")
    console.print(norms)


@friendly_errors
def diff(
    tuned: Annotated[
        str, typer.Option("--tuned", help="Fine-tuned model: folder, GGUF file or Hub id.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file.")],
    base: Annotated[
        str, typer.Option("--base", help="Base model: 'default', folder, GGUF file or Hub id.")
    ] = "default",
    prompts: Annotated[
        Path | None,
        typer.Option(help="Questions (text lines, JSONL or chat JSON): read at the last token."),
    ] = None,
    chats: Annotated[
        Path | None,
        typer.Option(help="Chats with answers (JSON/JSONL): mean over the answer tokens."),
    ] = None,
    layers: Annotated[str, typer.Option(help="all, 15, 12-18 or 12,14,16.")] = "all",
    diff_method: Annotated[
        str, typer.Option("--method", help="mean of differences, or pca.")
    ] = "mean",
    limit: Annotated[int | None, typer.Option(help="Use only the first N inputs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per forward pass.")] = 16,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """A model-diff vector: mean activation of the tuned model minus the base on the same inputs."""
    from steerlab.extract.model_diff import (
        DIFF_METHODS,
        answer_examples,
        check_same_architecture,
        model_diff,
        question_examples,
    )
    from steerlab.models import check_model_reference, load_model

    if diff_method not in DIFF_METHODS:
        raise SpecError(f"--method {diff_method!r} is not one of {', '.join(DIFF_METHODS)}")
    if (prompts is None) == (chats is None):
        raise SpecError("give exactly one of --prompts (questions) or --chats (with answers)")
    check_count(limit, "--limit")
    check_count(batch_size, "--batch-size")
    check_output(output)
    parsed_device_map = parse_device_map(device_map)
    if prompts is not None:
        from steerlab.data.qa import read_questions

        questions = read_questions(prompts)[:limit]
    else:
        from steerlab.data.chats import load_chats

        conversations = load_chats(chats)[:limit]  # type: ignore[arg-type]
    for reference in (base, tuned):  # both, before loading either
        check_model_reference(reference)
    base_model, tokenizer = load_model(
        base, dtype=dtype, device=device, device_map=parsed_device_map
    )
    tuned_model, _ = load_model(tuned, dtype=dtype, device=device, device_map=parsed_device_map)
    check_same_architecture(base_model, tuned_model)
    if prompts is not None:
        examples = question_examples(tokenizer, questions)
        position = "last"
    else:
        examples = answer_examples(tokenizer, conversations)
        position = "mean"
    vector = model_diff(
        base_model,
        tuned_model,
        tokenizer,
        examples,
        layers,
        position,  # type: ignore[arg-type]
        diff_method=diff_method,
        batch_size=batch_size,
        layers_path=layers_path,
    )
    vector.save(output)
    console.print(
        f"wrote {output}: model_diff ({diff_method}, {position}) over {len(examples)} inputs, "
        f"layers {vector.describe()['layers']}"
    )


@friendly_errors
def compare(
    vectors: Annotated[list[Path], typer.Argument(help="Two or more vector files.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for CSV, JSON and plots.")
    ] = None,
) -> None:
    """Cosine similarity per layer for every pair of vectors, and their norms."""
    from steerlab.extract import compare as run_compare
    from steerlab.vector import SteeringVector

    if output is not None:
        check_output(output, folder=True)
    loaded = {}
    for path in vectors:
        name = path.stem
        while name in loaded:
            name += "'"
        loaded[name] = SteeringVector.load(path)
    comparison = run_compare(loaded)
    console.print(comparison.table())
    if output is not None:
        written = comparison.save(output)
        console.print("wrote " + ", ".join(str(p) for p in written))
