"""Same numbers everywhere: steerlab against transformers 4.x, steering-vectors and repeng.

Runs in steerlab's environment and drives `peer_side.py` in a separate one (`.venv-peers`:
transformers 4.x, steering-vectors, repeng and numpy < 2, which conflict with steerlab's
stack; `make parity` builds it). On the embedded model it checks:

1. **Checkpoints load the same in transformers 4.x.** The cached embedded model (written by
   `steerlab.checkpoints.save_checkpoint`, with the legacy config keys) is loaded by 4.x and
   by 5.x; the hidden states of a few texts must agree to float tolerance on every layer. The
   same folder with `rope_theta` removed shows what 4.x read before the fix.
2. **Parity of the extraction methods**, on the same rendered pair texts (16 built-in
   happy/sad pairs; 256 CAA sycophancy A/B pairs from `../shared/data`), every layer:
   steerlab `mean_diff` vs steering-vectors `train_steering_vector` (last token);
   `pca_diff_centered` vs repeng `pca_diff`; `pca_pair_centered` vs repeng `pca_center`
   (target: cosine >= 0.9999). repeng reads the last layer after the model's final norm
   (`hidden_states[-1]`), steerlab the block's output, so that layer is reported apart.
3. **Extraction time** of each tool on the same data, all layers, each at its defaults.

Usage:
    make parity            # builds .venv-peers once, then runs this
    .venv/bin/python benchmarks/peers/parity.py --peers-python .venv-peers/bin/python \
        --out benchmarks/peers/out
Writes OUT/parity.json and the section "parity" of BENCHMARKS.md (`--report`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import steerlab as sl
from steerlab.data.pairs import pair_examples
from steerlab.models import default_model_folder
from steerlab.provenance import atomic_write, git_revision, utc_now

# The repository root, so that the `benchmarks` package (its report writer) imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.harness import cpu_snapshot, foreign_cores
from benchmarks.report import update_section

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared" / "data"
TEXTS = [
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "<|im_start|>user\nTell me about your day.<|im_end|>\n<|im_start|>assistant\nIt was",
]
PAIRINGS = (  # (steerlab method, peer key, peer name)
    ("mean_diff", "steering_vectors/mean_diff", "steering-vectors train_steering_vector"),
    ("pca_diff_centered", "repeng/pca_diff", "repeng pca_diff"),
    ("pca_pair_centered", "repeng/pca_center", "repeng pca_center"),
    ("pca_diff", "repeng/pca_diff", "repeng pca_diff (same name, other definition)"),
    ("pca_center", "repeng/pca_center", "repeng pca_center (same name, other definition)"),
)


def without_legacy_keys(folder: Path, into: Path) -> Path:
    """A copy of ``folder`` whose config.json has no ``rope_theta`` (what 5.x alone writes)."""
    into.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        if item.name != "config.json":
            (into / item.name).symlink_to(item)
    config = json.loads((folder / "config.json").read_text())
    for key in ("rope_theta", "rope_scaling", "torch_dtype"):
        config.pop(key, None)
    (into / "config.json").write_text(json.dumps(config, indent=2))
    return into


def our_hidden_states(model, tokenizer) -> list[np.ndarray]:
    out = []
    with torch.no_grad():
        for text in TEXTS:
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            states = model(**ids, output_hidden_states=True).hidden_states
            out.append(torch.stack([s[0] for s in states]).numpy())
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", default=".venv-peers/bin/python")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--report", type=Path, default=HERE.parents[1] / "BENCHMARKS.md")
    parser.add_argument(
        "--sets", default="16,256", help="Pair sets to run: 16 (built-in), 256 (CAA), or both."
    )
    args = parser.parse_args()
    threads = int(os.environ.get("STEERLAB_THREADS") or min(8, os.cpu_count() or 1))
    torch.set_num_threads(threads)

    folder = default_model_folder()
    model, tokenizer = sl.load_model("default")
    wanted = {name.strip() for name in args.sets.split(",")}
    pair_sets = {}
    if "16" in wanted:
        pair_sets["16"] = sl.builtin_pairs("happy_sad")[:16]
    if "256" in wanted:
        caa = args.shared / "caa" / "sycophancy" / "generate.json"
        pair_sets["256"] = sl.pairs_from_ab(caa, limit=256)
    rendered = {
        name: [[e.text for e in pair_examples(tokenizer, pair)] for pair in pairs]
        for name, pairs in pair_sets.items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        stripped = without_legacy_keys(folder, Path(tmp) / "no-legacy-keys")
        request = {
            "threads": threads,
            "checkpoints": {"fixed": str(folder), "without_legacy_keys": str(stripped)},
            "texts": TEXTS,
            "pair_sets": rendered,
        }
        (Path(tmp) / "request.json").write_text(json.dumps(request))
        peer_out = args.out / "peers"  # kept: the peers' half is the slow one
        start = time.perf_counter()
        machine_before, children_before = cpu_snapshot(), children_cpu()
        subprocess.run(
            [
                args.peers_python,
                str(HERE / "peer_side.py"),
                str(Path(tmp) / "request.json"),
                str(peer_out),
            ],
            check=True,
        )
        wall = time.perf_counter() - start
        print(f"peer side: {wall:.0f} s", file=sys.stderr)
        # Other processes' CPU while the peers ran: the machine's busy time minus the child's.
        machine_after = cpu_snapshot()
        peer_contention = math.nan
        if machine_before is not None and machine_after is not None:
            busy = machine_after[0] - machine_before[0]
            peer_contention = max(0.0, (busy - (children_cpu() - children_before)) / wall)
        peers = dict(np.load(peer_out / "peers.npz"))
        peer_report = json.loads((peer_out / "peers.json").read_text())

    ours_hidden = our_hidden_states(model, tokenizer)
    hidden = {}
    for name in ("fixed", "without_legacy_keys"):
        diffs = [
            np.abs(peers[f"hidden/{name}/{i}"] - ours).max(axis=(1, 2))
            for i, ours in enumerate(ours_hidden)
        ]
        per_layer = np.max(np.stack(diffs), axis=0)
        hidden[name] = {
            "max_abs_diff": float(per_layer.max()),
            "worst_layer": int(per_layer.argmax()),
            "per_layer": [float(x) for x in per_layer],
        }

    n_layers = model.config.num_hidden_layers
    parity: dict = {}
    timings: dict = {}
    contention: dict = {}
    for set_name, pairs in pair_sets.items():
        for method in dict.fromkeys(m for m, _, _ in PAIRINGS):
            before, start = cpu_snapshot(), time.perf_counter()
            vector = sl.extract(
                model, tokenizer, pairs, method=method, layers="all", progress=False
            )
            took = time.perf_counter() - start
            timings[f"steerlab_{method}/{set_name}"] = took
            contention[f"steerlab_{method}/{set_name}"] = foreign_cores(before, took)
            for ours_method, key, peer_name in PAIRINGS:
                if ours_method != method:
                    continue
                cosines = [
                    cosine(vector.directions[layer].numpy(), peers[f"{key}/{set_name}/{layer}"])
                    for layer in range(n_layers)
                ]
                compared = cosines[:-1] if key.startswith("repeng") else cosines
                parity[f"{method} vs {peer_name} [{set_name} pairs]"] = {
                    "min_cosine": min(compared),
                    "last_layer_cosine": cosines[-1],
                    "per_layer": cosines,
                }
    timings.update(peer_report["timings"])
    contention.update({key: peer_contention for key in peer_report["timings"]})
    result = {
        "date": utc_now(),
        "git_revision": git_revision(),
        "threads": threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "ours": {
            "transformers": __import__("transformers").__version__,
            "torch": torch.__version__,
            "steerlab": sl.__version__,
        },
        "peers": peer_report["versions"],
        "peer_tokenizer_adds_special_tokens": peer_report["special_tokens_added"],
        "hidden_states": hidden,
        "parity": parity,
        "timings": timings,
        "contention": contention,
        "runs": {name: utc_now() for name in pair_sets},
    }
    keep_other_sets(result, args.out / "parity.json", set(pair_sets))
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "parity.json") as handle:
        json.dump(result, handle, indent=2)
    update_section(args.report, "parity", markdown(result))
    print(markdown(result))


def children_cpu() -> float:
    """CPU seconds used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def keep_other_sets(result: dict, previous_file: Path, ran: set[str]) -> None:
    """Carry over from the previous ``parity.json`` the pair sets this run did not run (a
    ``--sets 16`` run keeps the slow 256-pair results), each with the date it was run."""
    if not previous_file.is_file():
        return
    previous = json.loads(previous_file.read_text())
    for name, when in previous.get("runs", {}).items():
        if name in ran:
            continue
        result["runs"][name] = when
        for key, row in previous["parity"].items():
            if key.endswith(f"[{name} pairs]"):
                result["parity"][key] = row
        for table in ("timings", "contention"):
            for key, value in previous.get(table, {}).items():
                if key.endswith(f"/{name}"):
                    result[table][key] = value


def markdown(result: dict) -> str:
    lines = [
        "## Same numbers everywhere: transformers 4.x, steering-vectors, repeng",
        "",
        "`make parity` (benchmarks/peers/parity.py): the embedded model's cached checkpoint "
        "read by transformers 4.x in a separate venv, and steerlab's extraction methods against "
        "the peers' on the same rendered pair texts (16 built-in happy/sad pairs; 256 CAA "
        "sycophancy pairs), every layer. repeng reads the last layer after the final norm, "
        "steerlab the block's output: that layer is shown apart. Times are one run each, all "
        "layers, each tool at its defaults (steering-vectors: batch 1; repeng: batch 32; "
        "steerlab: batch 16).",
        "",
        f"Run {result['date']} (git {result['git_revision'] or 'n/a'}), {result['machine']}, "
        f"{result['threads']} torch threads. steerlab: transformers "
        f"{result['ours']['transformers']}, torch {result['ours']['torch']}. Peers' venv: "
        + ", ".join(f"{k} {v}" for k, v in result["peers"].items())
        + ".",
        "",
        "| checkpoint read by transformers 4.x | max abs diff of hidden states vs 5.x "
        "| worst layer |",
        "|---|---|---|",
    ]
    for name, row in result["hidden_states"].items():
        label = (
            "as steerlab writes it (legacy keys)"
            if name == "fixed"
            else "without `rope_theta` (5.x keys only)"
        )
        lines.append(f"| {label} | {row['max_abs_diff']:.3g} | {row['worst_layer']} |")
    lines += [
        "",
        "| steerlab method vs peer | min cosine over layers | last layer |",
        "|---|---|---|",
    ]
    for name, row in result["parity"].items():
        lines.append(f"| {name} | {row['min_cosine']:.7f} | {row['last_layer_cosine']:.7f} |")
    runs = result.get("runs", {})
    lines += [
        "",
        "| extraction, all layers | 16 pairs (s) | other processes (cores) | 256 pairs (s) "
        "| other processes (cores) |",
        "|---|---|---|---|---|",
    ]
    tools = sorted({key.split("/")[0] for key in result["timings"]})
    for tool in tools:
        cells = []
        for n in ("16", "256"):
            took = result["timings"].get(f"{tool}/{n}")
            busy = result.get("contention", {}).get(f"{tool}/{n}", math.nan)
            shown = "unknown" if math.isnan(busy) else f"{busy:.2f}"
            cells += ["not run", "-"] if took is None else [f"{took:.2f}", shown]
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    lines += ["", reading(result, runs)]
    return "\n".join(lines) + "\n"


def reading(result: dict, runs: dict) -> str:
    """The tables in words: which pairs agree, and the time ratios per pair set."""
    parts = []
    agree = [
        name
        for name, row in result["parity"].items()
        if "other definition" not in name and row["min_cosine"] >= 0.9999
    ]
    if agree:
        parts.append(
            f"Parity (cosine >= 0.9999 on every layer both read alike): {len(agree)} of "
            f"{sum('other definition' not in n for n in result['parity'])} comparisons."
        )
    timings = result["timings"]
    for n in ("16", "256"):
        pairs = [
            ("steering-vectors", "steering_vectors", "steerlab_mean_diff"),
            ("repeng pca_diff", "repeng_pca_diff", "steerlab_pca_diff_centered"),
            ("repeng pca_center", "repeng_pca_center", "steerlab_pca_pair_centered"),
        ]
        ratios = [
            f"{label} {timings[f'{peer}/{n}'] / timings[f'{ours}/{n}']:.1f}x"
            for label, peer, ours in pairs
            if f"{peer}/{n}" in timings and f"{ours}/{n}" in timings
        ]
        if ratios:
            parts.append(
                f"{n} pairs (run {runs.get(n, 'n/a')}): peer time / steerlab time of the same "
                "vector: " + ", ".join(ratios) + "."
            )
    parts.append(
        "Times are single runs; a row whose 'other processes' is above ~0.15 cores ran on a "
        "shared machine and is slower than it would be alone."
    )
    return " ".join(parts)


if __name__ == "__main__":
    main()
