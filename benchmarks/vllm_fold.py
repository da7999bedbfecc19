"""Serve a folded checkpoint with vLLM and compare its greedy tokens with hooked steering.

Needs a machine with a CUDA GPU and vLLM installed next to steerlab (``pip install vllm``;
vLLM brings its own torch build). Not run on steerlab's CI machine, which has no GPU: see
BENCHMARKS.md ("fold").

    python benchmarks/vllm_fold.py --model default --vector mood.safetensors \\
        --coefficient 0.1 --layers 14-16 --out vllm-fold.json

What it does:

1. loads the model with steerlab, folds the steering (``steerlab.fold``, operator ``add``
   or ``ablate``) into a plain checkpoint in a temporary folder;
2. runs the folded folder and the unfolded model in vLLM (the offline engine, ``LLM``, fed
   token ids so that both sides read exactly the same prompt tokens), greedy;
3. runs the same prompts through transformers on the GPU: unsteered, and steered with hooks
   (``steerlab.steer`` at the same settings), greedy;
4. reports, per prompt, whether the tokens agree and where they first diverge, for
   vLLM-folded vs hooked, and for vLLM-unsteered vs transformers-unsteered (the floor set by
   two engines' kernels: what the first comparison can be expected to reach), and whether
   folding changed vLLM's output at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import steerlab as sl
from steerlab.checkpoints import save_checkpoint
from steerlab.generate import render_prompts
from steerlab.provenance import atomic_write, git_revision, utc_now

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the `benchmarks` package, for the report writer
from benchmarks.report import update_section  # noqa: E402

PROMPTS = [
    "Tell me about your day.",
    "What do you think of the weather?",
    "Describe your favourite place.",
    "How are you feeling?",
    "Write a sentence about the sea.",
    "What did you have for breakfast?",
    "Tell me about a friend of yours.",
    "What is your plan for the weekend?",
]


def transformers_greedy(
    model: Any, tokenizer: Any, ids: list[list[int]], new_tokens: int
) -> list[list[int]]:
    """Greedy continuations, one prompt at a time (no padding to tell apart)."""
    out = []
    for row in ids:
        tensor = torch.tensor([row], device=model.device)
        with torch.inference_mode():
            generated = model.generate(
                input_ids=tensor,
                attention_mask=torch.ones_like(tensor),
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        out.append(generated[0, len(row) :].tolist())
    return out


def vllm_greedy(folder: str, ids: list[list[int]], new_tokens: int, dtype: str) -> list[list[int]]:
    """Greedy continuations from vLLM's engine for a checkpoint folder."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=folder, dtype=dtype, enforce_eager=True, seed=0, gpu_memory_utilization=0.4)
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    results = llm.generate([{"prompt_token_ids": row} for row in ids], params)
    tokens = [list(r.outputs[0].token_ids) for r in results]
    del llm
    torch.cuda.empty_cache()
    return tokens


def agreement(a: list[list[int]], b: list[list[int]]) -> dict[str, Any]:
    """Rows with identical tokens, and each row's first differing position (None: none)."""
    first = []
    for x, y in zip(a, b, strict=True):
        diff = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
        if diff is None and len(x) != len(y):
            diff = min(len(x), len(y))
        first.append(diff)
    return {
        "identical_rows": sum(d is None for d in first),
        "rows": len(first),
        "first_diff": first,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--vector", required=True)
    parser.add_argument("--coefficient", type=float, default=0.1)
    parser.add_argument("--layers", default="14-16")
    parser.add_argument("--operator", default="add", choices=("add", "ablate"))
    parser.add_argument("--scale", default="norm", choices=("norm", "unit", "vector"))
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", type=Path, default=Path("vllm-fold.json"))
    parser.add_argument(
        "--report", type=Path, default=ROOT / "BENCHMARKS.md", help="Its section 'vllm'."
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("vllm_fold: no CUDA GPU here; vLLM needs one (nothing was run)", file=sys.stderr)
        return 1
    try:
        import vllm
    except ImportError:
        print("vllm_fold: vLLM is not installed (pip install vllm)", file=sys.stderr)
        return 1

    model, tokenizer = sl.load_model(args.model, dtype=args.dtype, device="cuda")
    vector = sl.SteeringVector.load(args.vector)
    steering: dict[str, Any] = dict(
        coefficient=args.coefficient, layers=args.layers, operator=args.operator
    )
    if args.operator == "add":
        steering["scale"] = args.scale
    hooks = dict(steering, sites="everywhere") if args.operator == "ablate" else steering
    texts = render_prompts(tokenizer, PROMPTS, None, True)
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    n = args.max_new_tokens

    unsteered_hf = transformers_greedy(model, tokenizer, ids, n)
    with sl.steer(model, vector, **hooks):
        hooked_hf = transformers_greedy(model, tokenizer, ids, n)
    with tempfile.TemporaryDirectory(prefix="steerlab-vllm-") as tmp:
        plain, folded = Path(tmp) / "plain", Path(tmp) / "folded"
        save_checkpoint(model, tokenizer, plain)  # the keys older loaders read, too
        sl.fold(model, vector, **steering, output_dir=folded, tokenizer=tokenizer)
        unsteered_vllm = vllm_greedy(str(plain), ids, n, args.dtype)
        folded_vllm = vllm_greedy(str(folded), ids, n, args.dtype)

    result = {
        "date": utc_now(),
        "git_revision": git_revision(),
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "settings": {**steering, "model": args.model, "vector": args.vector, "dtype": args.dtype},
        "new_tokens": n,
        "folded_vllm_vs_hooked_transformers": agreement(folded_vllm, hooked_hf),
        "unsteered_vllm_vs_transformers (engine floor)": agreement(unsteered_vllm, unsteered_hf),
        "folded_vs_unsteered_vllm (steering visible)": agreement(folded_vllm, unsteered_vllm),
    }
    with atomic_write(args.out) as handle:
        json.dump(result, handle, indent=2)
    print(json.dumps({k: v for k, v in result.items() if "vs" in k}, indent=2))
    update_section(args.report, "vllm", markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    """The section "vllm" of BENCHMARKS.md."""
    lines = [
        "## A folded checkpoint served by vLLM vs hooked steering",
        "",
        f"`benchmarks/vllm_fold.py`, run {result['date']} (git {result['git_revision']}), "
        f"vLLM {result['vllm']}, torch {result['torch']}, {result['gpu']}; settings "
        f"{json.dumps(result['settings'])}; {result['new_tokens']} greedy tokens per prompt.",
        "",
        "| comparison | rows with identical tokens | first differing token per row |",
        "|---|---|---|",
    ]
    for key, row in result.items():
        if isinstance(row, dict) and "identical_rows" in row:
            lines.append(
                f"| {key} | {row['identical_rows']} of {row['rows']} | {row['first_diff']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
