"""Where steering turns to gibberish on the embedded model: the warning's threshold.

For vectors extracted from two built-in pair sets (happy/sad and honesty, `pca_diff`, all
layers), generates greedy continuations of a few prompts at both signs of a grid of
strengths, given as a fraction r of each steered layer's activation norm (`scale="norm"`),
steering one middle layer (15) or seven (12-18, the README's setting). Fluency is the
perplexity of each continuation under the *unsteered* model (given the prompt), relative to
the unsteered continuation's. The table counts continuations with a ratio above
`GIBBERISH_PPL_RATIO` or fewer than half their tokens distinct (loops such as "!!!!!!"), and
gives the median ratio, on which `steerlab.steer.GIBBERISH_RATIO` rests: the pushes add up over
the steered layers, so the warning compares their per-layer ratios summed with it.

Usage: .venv/bin/python benchmarks/gibberish_threshold.py [--out DIR]
Writes DIR/gibberish.json and DIR/gibberish.png (default benchmarks/out/gibberish) and the
section "gibberish" of BENCHMARKS.md (`--report`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import steerlab as sl
from steerlab.errors import SteeringStrengthWarning
from steerlab.provenance import atomic_write, git_revision, utc_now

# The repository root, so that the `benchmarks` package (its report writer) imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import update_section

PROMPTS = [
    "Tell me about your day.",
    "What do you think about the weather this week?",
    "Describe your favourite place to relax.",
    "How should I spend a free Saturday?",
]
GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
LAYER_SETS = {"layer 15": [15], "layers 12-18": list(range(12, 19))}
VECTORS = ("happy_sad", "honesty")
GIBBERISH_PPL_RATIO = 4.0
MAX_NEW_TOKENS = 40


def continuation_nll(model, tokenizer, prompt: str, text: str) -> tuple[float, int]:
    """Mean NLL per token of ``text`` after the chat-formatted ``prompt``, unsteered."""
    rendered = sl.format_chat(tokenizer, [{"role": "user", "content": prompt}])
    prompt_ids = tokenizer(rendered, add_special_tokens=False).input_ids
    text_ids = tokenizer(text, add_special_tokens=False).input_ids
    if not text_ids:
        return math.inf, 0
    ids = torch.tensor([prompt_ids + text_ids])
    with torch.inference_mode():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(text_ids), reduction="mean")
    return float(nll), len(text_ids)


def distinct_fraction(tokenizer, text: str) -> float:
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return len(set(ids)) / len(ids) if ids else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/gibberish"))
    parser.add_argument("--report", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    model, tokenizer = sl.load_model("default")
    rows = []
    baseline = {}
    for prompt in PROMPTS:
        text = sl.generate(model, tokenizer, [prompt], max_new_tokens=MAX_NEW_TOKENS)[0].text
        baseline[prompt] = continuation_nll(model, tokenizer, prompt, text)[0]
    for name in VECTORS:
        vector = sl.extract(model, tokenizer, sl.builtin_pairs(name), "pca_diff", progress=False)
        for label, layers in LAYER_SETS.items():
            coefficients = [s * r for r in GRID for s in (-1, 1)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SteeringStrengthWarning)
                generations = sl.generate(
                    model,
                    tokenizer,
                    PROMPTS,
                    vector,
                    coefficients,
                    layers=layers,
                    scale="norm",
                    max_new_tokens=MAX_NEW_TOKENS,
                )
            for g in generations:
                nll, n = continuation_nll(model, tokenizer, g.prompt, g.text)
                ratio = math.exp(nll - baseline[g.prompt]) if n else math.inf
                distinct = distinct_fraction(tokenizer, g.text)
                rows.append(
                    {
                        "vector": name,
                        "layers": label,
                        "r": g.coefficient,
                        "prompt": g.prompt,
                        "text": g.text,
                        "ppl_ratio": ratio,
                        "distinct": distinct,
                        "gibberish": bool(ratio > GIBBERISH_PPL_RATIO or distinct < 0.5),
                    }
                )
    summary = {}
    for label in LAYER_SETS:
        by_r = {}
        for r in GRID:
            chosen = [x for x in rows if x["layers"] == label and abs(x["r"]) == r]
            ratios = sorted(x["ppl_ratio"] for x in chosen)
            by_r[r] = {
                "gibberish": sum(x["gibberish"] for x in chosen),
                "n": len(chosen),
                "median_ppl_ratio": ratios[len(ratios) // 2],
            }
        clean = [r for r in GRID if all(by_r[q]["gibberish"] == 0 for q in GRID if q <= r)]
        summary[label] = {"by_r": by_r, "largest_clean_r": max(clean) if clean else None}
    result = {
        "date": utc_now(),
        "git_revision": git_revision(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "grid": GRID,
        "gibberish_ppl_ratio": GIBBERISH_PPL_RATIO,
        "summary": summary,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "gibberish.json") as handle:
        json.dump(result, handle, indent=2)
    lines = [
        f"Run {result['date']} (git {result['git_revision']}), {result['machine']}; "
        f"{len(PROMPTS)} prompts x 2 signs x {len(VECTORS)} vectors per cell; gibberish = "
        f"perplexity > {GIBBERISH_PPL_RATIO}x the unsteered text's, or < 50% distinct "
        "tokens.",
        "",
        "| r (fraction of norm, per layer) | " + " | ".join(LAYER_SETS) + " |",
        "|---|" + "---|" * len(LAYER_SETS),
    ]
    for r in GRID:
        cells = [
            f"{summary[label]['by_r'][r]['gibberish']}/{summary[label]['by_r'][r]['n']} "
            f"(median ppl x{summary[label]['by_r'][r]['median_ppl_ratio']:.2f})"
            for label in LAYER_SETS
        ]
        lines.append(f"| {r:g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [
        f"Largest r with no gibberish up to it: {label}: {s['largest_clean_r']}"
        for label, s in summary.items()
    ]
    update_section(args.report, "gibberish", "\n".join(lines))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label in LAYER_SETS:
        ax.plot(
            GRID, [summary[label]["by_r"][r]["median_ppl_ratio"] for r in GRID], "o-", label=label
        )
    ax.axhline(GIBBERISH_PPL_RATIO, color="grey", ls="--", lw=1)
    ax.set_xlabel("push per layer / activation norm (r)")
    ax.set_ylabel("median perplexity vs unsteered")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Fluency of steered continuations, embedded model")
    fig.tight_layout()
    fig.savefig(args.out / "gibberish.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
