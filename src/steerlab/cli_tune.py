"""The ``steerlab tune`` (representation tuning) and ``steerlab eval`` (honesty suite) commands.

``steerlab.cli`` registers them at its bottom with ``register(app)``; like
:mod:`steerlab.cli_finetune`, annotations are evaluated eagerly here because the commands are
defined inside :func:`register`.
"""

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from steerlab.cli_finetune import _base_id, parse_target_modules
from steerlab.errors import SpecError
from steerlab.tuning.represent import DIRECTIONS


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


def run_layers(sources: list[str]) -> tuple[int, ...] | None:
    """The tuned layers recorded by the first representation-tuning run among ``sources``."""
    from steerlab.tuning import PROVENANCE_FILE

    for source in sources:
        path = Path(source.split("=", 1)[-1]) / PROVENANCE_FILE
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        layers = (record.get("representation") or {}).get("layers")
        if layers:
            return tuple(int(layer) for layer in layers)
    return None


def register(app: typer.Typer) -> None:
    """Add the ``tune`` and ``eval`` commands to ``app``."""
    from steerlab.cli import (
        DeviceOpt,
        DtypeOpt,
        LayersPathOpt,
        ModelOpt,
        check_count,
        check_number,
        check_output,
        check_vector_fits,
        console,
        friendly_errors,
    )

    @app.command()
    @friendly_errors
    def tune(
        vector: Annotated[
            Path, typer.Option("--vector", "-v", help="Target steering vector (.safetensors).")
        ],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Run folder (resumable; loadable later).")
        ],
        model: ModelOpt = "default",
        layers: Annotated[
            str | None,
            typer.Option(
                help="Layers whose activations are pulled, e.g. 12-18 (default: all "
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
            str | None, typer.Option(help="Comma list, one weight per tuned layer.")
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
            bool,
            typer.Option(help="Also train on the statements kept for evaluation."),
        ] = False,
        train_layers: Annotated[
            str | None,
            typer.Option(help="Fully fine-tune these decoder layers instead of LoRA."),
        ] = None,
        rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
        alpha: Annotated[float, typer.Option(help="LoRA alpha.")] = 16.0,
        target_modules: Annotated[
            str | None, typer.Option(help="Comma list of linear modules for LoRA (default: all).")
        ] = None,
        epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 1.0,
        max_steps: Annotated[
            int | None, typer.Option(help="Optimiser steps in total (overrides --epochs).")
        ] = None,
        lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 2e-4,
        batch_size: Annotated[int, typer.Option(help="Chats per forward pass.")] = 4,
        gradient_accumulation: Annotated[
            int, typer.Option("--grad-accum", help="Forward passes per optimiser step.")
        ] = 1,
        max_length: Annotated[int, typer.Option(help="Tokens per chat at most.")] = 256,
        save_steps: Annotated[
            int, typer.Option(help="Checkpoint (and validate) every N steps.")
        ] = 50,
        eval_fraction: Annotated[
            float, typer.Option(help="Fraction of chats held out as a validation split.")
        ] = 0.1,
        early_stopping: Annotated[
            int | None,
            typer.Option(help="Stop after N validations without improvement (needs a split)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        limit: Annotated[int | None, typer.Option(help="Use only the first N records.")] = None,
        resume: Annotated[
            bool, typer.Option(help="Continue from the last checkpoint in OUTPUT, if any.")
        ] = True,
        dtype: DtypeOpt = None,
        device: DeviceOpt = None,
        layers_path: LayersPathOpt = None,
    ) -> None:
        """Representation tuning: fine-tune with token loss + λ·(1 - cos(activation, ±vector))."""
        from steerlab.data.honesty import HonestyTemplates
        from steerlab.layers import find_layers
        from steerlab.models import load_model
        from steerlab.tuning import FinetuneConfig, read_loss_log
        from steerlab.tuning.represent import POSITIONS, RepresentationConfig
        from steerlab.tuning.represent import tune as run_tune
        from steerlab.tuning.sources import tuning_chats
        from steerlab.vector import SteeringVector

        if direction not in DIRECTIONS:
            raise SpecError(f"--direction {direction!r} is not toward or away")
        if positions not in POSITIONS:
            raise SpecError(f"--positions {positions!r} is not one of {', '.join(POSITIONS)}")
        check_number(rep_weight, "--rep-weight")
        check_count(limit, "--limit")
        check_output(output, folder=True)
        if train_layers is not None and target_modules is not None:
            raise SpecError(
                "--train-layers (full fine-tune) and --target-modules exclude each other"
            )
        config = FinetuneConfig(
            rank=rank,
            alpha=alpha,
            target_modules=parse_target_modules(target_modules),
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=lr,
            batch_size=batch_size,
            gradient_accumulation=gradient_accumulation,
            max_length=max_length,
            seed=seed,
            save_steps=save_steps,
            eval_fraction=eval_fraction,
            merge=True,
            early_stopping_patience=early_stopping,
        )
        # Everything that can be checked without the model fails before it loads.
        target = SteeringVector.load(vector)
        prompt_templates = HonestyTemplates.from_file(templates) if templates else None
        tuning_data = tuning_chats(
            data,
            completions=completions or default_completions(direction),
            instructions=instructions,
            templates=prompt_templates,
            include_held_out=include_held_out,
            limit=limit,
        )
        loaded, tokenizer = load_model(model, dtype=dtype, device=device)
        check_vector_fits(target, vector, loaded)
        layer_map = find_layers(loaded, layers_path)
        chosen = layer_map.resolve(layers) if layers is not None else tuple(target.layers)
        representation = RepresentationConfig(
            layers=tuple(chosen),
            rep_weight=rep_weight,
            direction=direction,
            positions=positions,
            layer_weights=parse_layer_weights(layer_weights, len(chosen)),
            token_loss=not rep_only,
        )
        if train_layers is not None:
            config = dataclasses.replace(
                config, full_finetune_layers=tuple(layer_map.resolve(train_layers))
            )
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
            resume=resume,
            base_model=_base_id(model),
            layers_path=layers_path,
        )
        print_tune_summary(console, result, read_loss_log(result.loss_log), output)

    @app.command(name="eval")
    @friendly_errors
    def eval_command(
        models: Annotated[
            str,
            typer.Option(
                help="Comma list of models: default, run folders, Hub ids; LABEL=MODEL to name one."
            ),
        ],
        output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results.")],
        steered: Annotated[
            list[str] | None,
            typer.Option(
                help="Online steering row MODEL:VECTOR:COEF (repeatable), e.g. "
                "default:honesty.safetensors:4."
            ),
        ] = None,
        suite: Annotated[str, typer.Option(help="Evaluation suite (honesty).")] = "honesty",
        vector: Annotated[
            Path | None,
            typer.Option(help="Target vector for the cosine metric (default: the steered one)."),
        ] = None,
        layers: Annotated[
            str | None,
            typer.Option(
                help="Layers for the cosine metric and steering (default: the tuned run's "
                "layers, else the vector's)."
            ),
        ] = None,
        data_dir: Annotated[
            Path | None,
            typer.Option(
                help="Folder laid out like shared/data (facts/, truthfulqa/); default "
                "$STEERLAB_DATA or ../shared/data when present."
            ),
        ] = None,
        facts: Annotated[
            list[str] | None, typer.Option(help="True/false statement file (repeatable).")
        ] = None,
        split: Annotated[
            str,
            typer.Option(
                help="Statements scored per facts file: heldout (the part tune never trains "
                "on), all, or auto: heldout for a file an evaluated run was tuned on, else all."
            ),
        ] = "auto",
        truthfulqa: Annotated[
            str | None, typer.Option(help="TruthfulQA MC JSON (mc1/mc2 targets).")
        ] = None,
        ab: Annotated[
            list[str] | None,
            typer.Option(help="A/B file whose matching answer is the honest one (repeatable)."),
        ] = None,
        text: Annotated[
            str | None, typer.Option(help="Texts for perplexity (lines, or JSONL with 'text').")
        ] = None,
        limit: Annotated[int, typer.Option(help="Items per dataset at most.")] = 200,
        bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
        seed: Annotated[int, typer.Option(help="Random seed of the bootstrap.")] = 0,
        batch_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 16,
        resume: Annotated[
            bool, typer.Option(help="Skip models already evaluated in OUTPUT.")
        ] = True,
    ) -> None:
        """Compare models (and online steering) on the honesty suite, with 95% bootstrap CIs."""
        from steerlab.evaluate.suite import (
            SPLITS,
            HonestySuite,
            evaluate,
            find_data_dir,
            parse_models,
        )
        from steerlab.vector import SteeringVector

        if suite != "honesty":
            raise SpecError(f"--suite {suite!r} is unknown; available: honesty")
        if split not in SPLITS:
            raise SpecError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
        check_count(limit, "--limit")
        check_count(bootstrap, "--bootstrap")
        check_count(batch_size, "--batch-size")
        check_output(output, folder=True)
        entries = parse_models(models, steered or [])
        target = SteeringVector.load(vector) if vector is not None else None
        target_path = str(vector) if vector is not None else None
        if target is None:
            first = next((e for e in entries if e.vector is not None), None)
            if first is not None:
                target, target_path = first.vector, first.vector_path
        chosen = _eval_layers(layers, target, models)
        settings: dict[str, Any] = {
            "vector": target,
            "vector_path": target_path,
            "layers": chosen,
            "limit": limit,
            "bootstrap": bootstrap,
            "seed": seed,
            "batch_size": batch_size,
        }
        if ab:
            settings["ab"] = tuple(ab)
        if text is not None:
            settings["text"] = text
        if truthfulqa is not None:
            settings["truthfulqa"] = truthfulqa
        found = find_data_dir(str(data_dir) if data_dir is not None else None)
        if facts:
            settings["facts"] = tuple(facts)
        settings["split"] = split
        if found is not None:
            config = HonestySuite.from_data_dir(found, **settings)
            console.print(f"evaluation data: {found}", highlight=False)
        else:
            config = HonestySuite(**settings)
        if config.truthfulqa is None:
            console.print("TruthfulQA: skipped (no --truthfulqa file or data folder)")
        if target is None:
            console.print("cosine to the target vector: skipped (no --vector or --steered)")
        result = evaluate(entries, output, config, progress=True, resume=resume)
        console.print(result.rich_table())
        for line in result.data_summary():
            console.print(line, highlight=False)
        console.print(f"results: {output}/results.jsonl, table.csv, table.md, bars.png/.svg")


def _eval_layers(layers: str | None, target: Any, models: str) -> tuple[int, ...] | None:
    """--layers as given ("all": the vector's), else the first tuned run's, else None."""
    if layers is not None:
        from steerlab.layers import parse_layers

        if layers.strip().lower() == "all":
            if target is None:
                raise SpecError("--layers all needs a --vector to know the layers")
            return tuple(target.layers)
        if target is not None:
            # The vector knows its model's layer count: -1 is the last layer, as elsewhere.
            return parse_layers(layers, target.metadata.num_layers)
        # No vector and no model yet: the suite checks the range against the models later.
        if any(part.strip().startswith("-") for part in layers.split(",")):
            raise SpecError(f"--layers {layers!r}: negative layers need a --vector or --steered")
        return parse_layers(layers, 1 << 20)
    return run_layers([part.strip() for part in models.split(",") if part.strip()])


def print_tune_summary(console: Any, result: Any, rows: list[dict[str, Any]], output: Path) -> None:
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
