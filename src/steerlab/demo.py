"""``steerlab demo``: the whole core loop on the embedded model, in a few minutes on a CPU.

It uses the library's public functions only, and prints the result objects' own
``table()`` and ``summary()``; the ``steerlab demo`` command (:mod:`steerlab.cli.demo`) calls
:func:`run_demo`, and nothing here imports the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from steerlab.data import ContrastPair, builtin_pairs
from steerlab.extract import extract
from steerlab.generate import generate
from steerlab.models import load_model
from steerlab.terminal import LogConsole
from steerlab.vector import SteeringVector

HELD_OUT_SPLIT = 48  # pairs 48-63 are kept out of extraction to measure the behaviour
DEMO_PROMPTS = (
    "Tell me about your day.",
    "What do you think of Mondays?",
    "Describe the city you live in.",
)


def run_demo(
    model: str = "default",
    coefficient: float = 0.05,
    layers: str = "12-18",
    max_new_tokens: int = 40,
    output: Path = Path("demo-output"),
    console: Console | None = None,
) -> SteeringVector:
    """Extract a mood vector from the built-in pairs and print steered generations.

    The coefficient is a fraction of each layer's typical activation norm (unit direction
    per layer), the convention that behaves alike across layers and models. Over layers
    12-18 the pushes add up: 0.05 each stays fluent on the embedded model, 0.1 each already
    doubles the perplexity of the continuations (BENCHMARKS.md, "gibberish").

    Returns:
        The extracted vector (also saved to ``output/happy_sad.safetensors``).
    """
    console = console or LogConsole()
    started = time.perf_counter()
    console.rule("[bold]steerlab demo")
    console.print(f"1/6 loading model [cyan]{model}[/]")
    loaded, tokenizer = load_model(model)
    pairs = builtin_pairs("happy_sad")
    train, held_out = pairs[:HELD_OUT_SPLIT], pairs[HELD_OUT_SPLIT:]
    console.print(f"2/6 extracting a mood vector (mean_diff, all layers) from {len(train)} pairs")
    vector = extract(loaded, tokenizer, train, method="mean_diff", layers="all", progress=True)
    path = vector.save(Path(output) / "happy_sad.safetensors")
    console.print(f"    saved {path}")
    coefficients = [-coefficient, 0.0, coefficient]
    console.print(
        f"3/6 generating at coefficients {coefficients} x norm on layers {layers}, "
        f"{len(DEMO_PROMPTS)} prompts, one batched generate"
    )
    results = generate(
        loaded,
        tokenizer,
        list(DEMO_PROMPTS),
        vector,
        coefficients,
        layers=layers,
        scale="norm",  # coefficients are fractions of each layer's activation norm
        max_new_tokens=max_new_tokens,
    )
    table = Table(title="negative = sadder, 0 = unsteered, positive = happier", show_lines=True)
    table.add_column("prompt", max_width=24)
    table.add_column("coef", justify="right")
    table.add_column("generation")
    for item in results:
        table.add_row(item.prompt, f"{item.coefficient:+g}", item.text)
    console.print(table)
    run_demo_sweep(loaded, tokenizer, vector, held_out, layers, coefficient, Path(output), console)
    run_demo_finetune_diff(model, loaded, tokenizer, Path(output), console)
    run_demo_representation(model, loaded, tokenizer, Path(output), console)
    console.print(f"done in {time.perf_counter() - started:.0f} s")
    return vector


def run_demo_finetune_diff(
    model_name: str, base: Any, tokenizer: Any, output: Path, console: Console
) -> None:
    """Fine-tune a copy on deceptive answers, then compare model-diff and contrastive vectors.

    Uses the built-in honesty pairs: the deceptive answers become the fine-tuning chats, and
    the same pairs (deceptive = positive) give the contrastive vector, so both vectors point
    toward "more deceptive".
    """
    from steerlab.extract import compare
    from steerlab.extract.model_diff import answer_examples, model_diff
    from steerlab.tuning import FinetuneConfig, finetune

    pairs = builtin_pairs("honesty")
    questions = [p.messages[-1][1] for p in pairs if p.messages]
    chats = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": p.negative}]
        for q, p in zip(questions, pairs, strict=True)
    ]
    console.print(
        f"5/6 LoRA fine-tuning a copy on {len(chats)} deceptive answers (12 steps), then "
        "model-diff vs contrastive vectors"
    )
    tuned, _ = load_model(model_name)
    config = FinetuneConfig(max_steps=12, batch_size=4, learning_rate=1e-3, max_length=128)
    result = finetune(tuned, tokenizer, chats, output / "deceptive-lora", config, resume=False)
    console.print(f"    training loss {result.losses[0]:.3f} -> {result.final_loss:.3f}")
    # Both vectors read the mean over the reply tokens of the same kind of text.
    examples = answer_examples(tokenizer, chats)
    diff = model_diff(base, result.model, tokenizer, examples, "all", "mean", progress=True)
    flipped = [ContrastPair(p.negative, p.positive, p.messages) for p in pairs]
    contrastive = extract(base, tokenizer, flipped, "mean_diff", "all", "mean", progress=True)
    diff.save(output / "model_diff.safetensors")
    contrastive.save(output / "contrastive_deceptive.safetensors")
    comparison = compare({"contrastive": contrastive, "model_diff": diff})
    console.print(comparison.table())
    comparison.save(output / "compare")
    console.print(f"    wrote {output}/compare/cosine.csv, cosine.json, cosine.png/.svg")


def run_demo_sweep(
    model: Any,
    tokenizer: Any,
    vector: SteeringVector,
    held_out: list[Any],
    layers: str,
    coefficient: float,
    output: Path,
    console: Console,
) -> None:
    """A small alignment/helpfulness sweep: mood on held-out pairs vs general knowledge."""
    from steerlab.data import load_mmlu
    from steerlab.evaluate import ContinuationBehaviorTask, MultipleChoiceTask, sweep

    behaviour = ContinuationBehaviorTask(
        "mood",
        tuple(p.messages[-1][1] for p in held_out),
        tuple(p.positive for p in held_out),
        tuple(p.negative for p in held_out),
    )
    knowledge = MultipleChoiceTask(
        "general_mc",
        tuple(load_mmlu("builtin:general_mc", limit=24)),
        scoring="text",  # a 135M model answers by letter at chance; answer texts it can rank
    )
    top = 2 * coefficient
    coefficients = [round(top * k / 4, 6) for k in range(-4, 5)]
    console.print(
        f"4/6 sweeping {len(coefficients)} coefficients ({-top:g}..{top:g} x norm): mood on "
        f"{len(held_out)} held-out pairs, helpfulness on {len(knowledge.items)} questions"
    )
    folder = output / "sweep"
    result = sweep(
        model,
        tokenizer,
        vector,
        coefficients,
        [behaviour, knowledge],
        layers=layers,
        scale="norm",  # coefficients are fractions of each layer's activation norm
        output_dir=folder,
        batch_size=32,
        coefficients_per_batch=3,
    )
    console.print(result.table())
    console.print(result.fit().summary(), highlight=False)
    console.print(
        f"    wrote {folder}/results.jsonl, fit.json, behavior/helpfulness/tradeoff plots"
    )


REPRESENTATION_LAYERS = (12, 13, 14, 15, 16, 17, 18)
REPRESENTATION_STEPS = 16
REPRESENTATION_WEIGHT = 4.0


def run_demo_representation(
    model_name: str, base: Any, tokenizer: Any, output: Path, console: Console
) -> None:
    """Representation tuning toward honesty vs token-only tuning vs online steering.

    An honesty vector (built-in honesty pairs, positive = honest; mean over the reply tokens)
    is tuned into fresh copies of the model on the training part of the built-in facts with
    the cosine loss (λ = :data:`REPRESENTATION_WEIGHT` on layers 12-18) toward it and away
    from it, and with the token loss alone; the honesty suite then compares them with the
    untuned model and with online steering, on the held-out facts, the built-in A/B
    dilemmas and general text.
    """
    from steerlab.evaluate import EvalModel, HonestySuite, evaluate_models
    from steerlab.tuning import FinetuneConfig, RepresentationConfig, tune, tuning_chats

    vector = extract(
        base, tokenizer, builtin_pairs("honesty"), "mean_diff", "all", "mean", progress=True
    )
    vector.save(output / "honesty.safetensors")
    data = tuning_chats("builtin:facts")
    console.print(
        f"6/6 representation tuning: LoRA, {REPRESENTATION_STEPS} steps on {data.describe()}; "
        f"cosine loss (λ = {REPRESENTATION_WEIGHT:g}) toward and away from honesty on layers "
        "12-18, and a token-only run"
    )
    config = FinetuneConfig(
        max_steps=REPRESENTATION_STEPS,
        batch_size=4,
        learning_rate=1e-3,
        max_length=96,
        save_steps=REPRESENTATION_STEPS,
        lr_scheduler="constant",
    )
    runs = (
        ("rep-toward", REPRESENTATION_WEIGHT, "toward", data),
        ("token-only", 0.0, "toward", data),
        (
            "rep-away",
            REPRESENTATION_WEIGHT,
            "away",
            tuning_chats("builtin:facts", completions="dishonest"),
        ),
    )
    tuned: dict[str, Any] = {}
    for label, weight, direction, chats in runs:
        fresh, _ = load_model(model_name)
        result = tune(
            fresh,
            tokenizer,
            vector,
            chats,  # TuningData: the provenance records builtin:facts
            output / label,
            RepresentationConfig(
                layers=REPRESENTATION_LAYERS, rep_weight=weight, direction=direction
            ),
            config,
            progress=False,
            resume=False,
        )
        tuned[label] = result.model
        first, last = _logged(result.loss_log)
        console.print(
            f"    {label}: cosine to ±vector {first.get('cos_sim', float('nan')):+.3f} -> "
            f"{last.get('cos_sim', float('nan')):+.3f}, token loss "
            f"{first.get('ce_loss', float('nan')):.3f} -> {last.get('ce_loss', float('nan')):.3f} "
            "(first step -> mean of the last 4)"
        )
    # Online steering at the same layers with about 0.05 of the typical activation norm per
    # layer (seven layers add up; 0.15 already wrecks perplexity).
    norms = vector.activation_norms or {}
    scales = [
        float(norms[layer]) / float(vector.directions[layer].norm())
        for layer in REPRESENTATION_LAYERS
        if layer in norms and float(vector.directions[layer].norm()) > 0
    ]
    coefficient = round(0.05 * sum(scales) / len(scales), 2) if scales else 1.0
    models = [EvalModel("untuned", source=model_name, model=base, tokenizer=tokenizer)]
    models += [
        EvalModel(label, source=str(output / label), model=tuned[label], tokenizer=tokenizer)
        for label, *_ in runs
    ]
    models += [
        EvalModel(
            f"steered x{coefficient:g}",
            source=model_name,
            model=base,
            tokenizer=tokenizer,
            vector=vector,
            vector_path=str(output / "honesty.safetensors"),
            coefficient=coefficient,
            layers=REPRESENTATION_LAYERS,
        ),
    ]
    suite = HonestySuite(
        vector=vector,
        vector_path=str(output / "honesty.safetensors"),
        layers=REPRESENTATION_LAYERS,
        split="heldout",  # the runs were tuned on the other statements of builtin:facts
        limit=24,
        cosine_prompts=24,
    )
    report = evaluate_models(models, output / "eval", suite, progress=True, resume=False)
    console.print(report.table())
    console.print(f"    wrote {output}/eval/results.jsonl, table.csv/.md, bars.png/.svg")


def _logged(loss_log: Path, last: int = 4) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first logged training step, and the mean of the last ``last`` (batches are noisy)."""
    from steerlab.tuning import read_loss_log

    rows = [row for row in read_loss_log(loss_log) if "loss" in row]
    if not rows:
        return {}, {}
    tail = rows[-last:]
    keys = set.intersection(*(set(row) for row in tail))
    return rows[0], {k: sum(float(row[k]) for row in tail) / len(tail) for k in keys}
