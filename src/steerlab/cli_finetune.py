"""The ``steerlab finetune`` command (LoRA or selected-layer SFT on chats).

``steerlab.cli`` registers it at its bottom with
``from steerlab.cli_finetune import register`` and ``register(app)``. Everything from
``steerlab.cli`` is imported inside :func:`register`, so importing this module first works
too, and annotations are evaluated eagerly here (no ``from __future__ import annotations``)
because the command is defined inside :func:`register`.
"""

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from steerlab.errors import SpecError


def parse_target_modules(text: str | None) -> tuple[str, ...] | None:
    """``"q_proj,v_proj"`` -> ``("q_proj", "v_proj")``; None, ``""`` or ``"auto"`` -> None."""
    if text is None or text.strip().lower() in ("", "auto"):
        return None
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise SpecError(f"--target-modules {text!r} names no module")
    return names


def _base_id(model: str) -> str:
    """The base id to record: a local folder as an absolute path, anything else as given."""
    if model != "default" and Path(model).expanduser().is_dir():
        return str(Path(model).expanduser().resolve())
    return model


def register(app: typer.Typer) -> None:
    """Add the ``finetune`` command to ``app`` (the ``steerlab`` typer app)."""
    from steerlab.cli import (
        DeviceOpt,
        DtypeOpt,
        LayersPathOpt,
        ModelOpt,
        check_count,
        check_output,
        console,
        friendly_errors,
    )

    @app.command()
    @friendly_errors
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
        rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
        alpha: Annotated[float, typer.Option(help="LoRA alpha.")] = 16.0,
        dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.0,
        target_modules: Annotated[
            str | None,
            typer.Option(
                help="Comma list of linear modules, e.g. q_proj,v_proj (default: every "
                "attention and MLP projection)."
            ),
        ] = None,
        layers: Annotated[
            str | None,
            typer.Option(help="Fully fine-tune these decoder layers (e.g. 12-18) instead of LoRA."),
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
        save_steps: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 50,
        eval_fraction: Annotated[
            float, typer.Option(help="Fraction of chats held out for an eval loss.")
        ] = 0.0,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        merge: Annotated[
            bool, typer.Option(help="Also save a merged plain checkpoint in OUTPUT/merged.")
        ] = False,
        limit: Annotated[int | None, typer.Option(help="Use only the first N chats.")] = None,
        resume: Annotated[
            bool, typer.Option(help="Continue from the last checkpoint in OUTPUT, if any.")
        ] = True,
        dtype: DtypeOpt = None,
        device: DeviceOpt = None,
        layers_path: LayersPathOpt = None,
    ) -> None:
        """Fine-tune a model on chats (loss on assistant replies only): LoRA or some layers."""
        from steerlab.layers import find_layers
        from steerlab.models import load_model
        from steerlab.tuning import FinetuneConfig, load_chats
        from steerlab.tuning import finetune as run_finetune

        config = FinetuneConfig(
            rank=rank,
            alpha=alpha,
            dropout=dropout,
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
            merge=merge,
        )
        if layers is not None and target_modules is not None:
            raise SpecError(
                "--layers (full fine-tune) and --target-modules (LoRA) exclude each other"
            )
        check_count(limit, "--limit")
        check_output(output, folder=True)
        chats = load_chats(data, limit=limit)  # bad data fails before the model loads
        loaded, tokenizer = load_model(model, dtype=dtype, device=device)
        if layers is not None:
            chosen = find_layers(loaded, layers_path).resolve(layers)
            config = dataclasses.replace(config, full_finetune_layers=chosen)
        result = run_finetune(
            loaded,
            tokenizer,
            chats,
            output,
            config,
            progress=True,
            resume=resume,
            base_model=_base_id(model),
            layers_path=layers_path,
        )
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
