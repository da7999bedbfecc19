"""``steerlab demo``: the whole core loop on the embedded model, in a few minutes on a CPU."""

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
from steerlab.vector import SteeringVector

HELD_OUT_SPLIT = 48  # pairs 48-63 are kept out of extraction to measure the behaviour
DEMO_PROMPTS = (
    "Tell me about your day.",
    "What do you think of Mondays?",
    "Describe the city you live in.",
)


def run_demo(
    model: str = "default",
    coefficient: float = 0.1,
    layers: str = "12-18",
    max_new_tokens: int = 40,
    output: Path = Path("demo-output"),
    console: Console | None = None,
) -> SteeringVector:
    """Extract a mood vector from the built-in pairs and print steered generations.

    The coefficient is a fraction of each layer's typical activation norm (unit direction
    per layer), the convention that behaves alike across layers and models.

    Returns:
        The extracted vector (also saved to ``output/happy_sad.safetensors``).
    """
    console = console or Console()
    started = time.perf_counter()
    console.rule("[bold]steerlab demo")
    console.print(f"1/5 loading model [cyan]{model}[/]")
    loaded, tokenizer = load_model(model)
    pairs = builtin_pairs("happy_sad")
    train, held_out = pairs[:HELD_OUT_SPLIT], pairs[HELD_OUT_SPLIT:]
    console.print(f"2/5 extracting a mood vector (mean_diff, all layers) from {len(train)} pairs")
    vector = extract(loaded, tokenizer, train, method="mean_diff", layers="all", progress=True)
    path = vector.save(Path(output) / "happy_sad.safetensors")
    console.print(f"    saved {path}")
    coefficients = [-coefficient, 0.0, coefficient]
    console.print(
        f"3/5 generating at coefficients {coefficients} x norm on layers {layers}, "
        f"{len(DEMO_PROMPTS)} prompts, one batched generate"
    )
    results = generate(
        loaded,
        tokenizer,
        list(DEMO_PROMPTS),
        vector,
        coefficients,
        layers=layers,
        normalize=True,
        scale_by_norm=True,
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
    from steerlab.compare import compare
    from steerlab.extract.model_diff import answer_examples, model_diff
    from steerlab.tuning.finetune import FinetuneConfig, finetune

    pairs = builtin_pairs("honesty")
    questions = [p.messages[-1][1] for p in pairs if p.messages]
    chats = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": p.negative}]
        for q, p in zip(questions, pairs, strict=True)
    ]
    console.print(
        f"5/5 LoRA fine-tuning a copy on {len(chats)} deceptive answers (12 steps), then "
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
    from steerlab.cli import print_fit_summary
    from steerlab.data.evalsets import load_mmlu
    from steerlab.evaluate.specs import resolve_path
    from steerlab.evaluate.sweep import sweep
    from steerlab.evaluate.tasks import ContinuationBehaviorTask, MultipleChoiceTask

    behaviour = ContinuationBehaviorTask(
        "mood",
        tuple(p.messages[-1][1] for p in held_out),
        tuple(p.positive for p in held_out),
        tuple(p.negative for p in held_out),
    )
    knowledge = MultipleChoiceTask(
        "general_mc",
        tuple(load_mmlu(resolve_path("builtin:general_mc"), limit=24)),
        scoring="text",  # a 135M model answers by letter at chance; answer texts it can rank
    )
    top = 2 * coefficient
    coefficients = [round(top * k / 4, 6) for k in range(-4, 5)]
    console.print(
        f"4/5 sweeping {len(coefficients)} coefficients ({-top:g}..{top:g} x norm): mood on "
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
        normalize=True,
        scale_by_norm=True,
        output_dir=folder,
        batch_size=32,
        coefficients_per_batch=3,
    )
    console.print(result.table())
    print_fit_summary(result.fit())
    console.print(
        f"    wrote {folder}/results.jsonl, fit.json, behavior/helpfulness/tradeoff plots"
    )
