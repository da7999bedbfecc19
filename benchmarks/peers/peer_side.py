"""The peers' half of the parity check; runs in `.venv-peers` (transformers 4.x, numpy < 2).

It never imports steerlab. Given a request JSON written by `parity.py`, it loads each
checkpoint with transformers 4.x, dumps the hidden states of a few texts (to compare with
transformers 5), and extracts vectors from the same rendered pair texts with
steering-vectors' `train_steering_vector` (mean of differences at the last token) and with
repeng's `read_representations` (`pca_diff`, `pca_center`), timing each extraction.
Writes `<out>/peers.npz` (arrays) and `<out>/peers.json` (versions, timings).

Usage: .venv-peers/bin/python benchmarks/peers/peer_side.py REQUEST.json OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def load(folder: str):
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def hidden_states(model, tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Per text: (layers + 1, tokens, hidden) from output_hidden_states."""
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            states = model(**ids, output_hidden_states=True).hidden_states
            out.append(torch.stack([s[0] for s in states]).numpy())
    return out


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(request["threads"]))
    arrays: dict[str, np.ndarray] = {}
    report: dict = {
        "versions": {
            p: version(p) for p in ("transformers", "torch", "numpy", "steering-vectors", "repeng")
        },
        "timings": {},
        "special_tokens_added": None,
    }
    for name, folder in request["checkpoints"].items():
        model, tokenizer = load(folder)
        for i, states in enumerate(hidden_states(model, tokenizer, request["texts"])):
            arrays[f"hidden/{name}/{i}"] = states
    model, tokenizer = load(request["checkpoints"]["fixed"])
    n_layers = model.config.num_hidden_layers
    from repeng import DatasetEntry
    from repeng.extract import read_representations
    from steering_vectors import train_steering_vector

    for set_name, pairs in request["pair_sets"].items():
        texts = [t for pair in pairs for t in pair]
        report["special_tokens_added"] = any(
            tokenizer(t).input_ids != tokenizer(t, add_special_tokens=False).input_ids
            for t in texts
        )
        start = time.perf_counter()
        vector = train_steering_vector(
            model,
            tokenizer,
            [tuple(p) for p in pairs],
            layers=list(range(n_layers)),
            read_token_index=-1,
            show_progress=False,
        )
        report["timings"][f"steering_vectors/{set_name}"] = time.perf_counter() - start
        for layer, tensor in vector.layer_activations.items():
            arrays[f"steering_vectors/mean_diff/{set_name}/{layer}"] = tensor.float().numpy()
        entries = [DatasetEntry(positive=p, negative=n) for p, n in pairs]
        for method in ("pca_diff", "pca_center"):
            start = time.perf_counter()
            directions = read_representations(
                model, tokenizer, entries, hidden_layers=list(range(n_layers)), method=method
            )
            report["timings"][f"repeng_{method}/{set_name}"] = time.perf_counter() - start
            for layer, direction in directions.items():
                arrays[f"repeng/{method}/{set_name}/{layer}"] = direction
    np.savez(out / "peers.npz", **arrays)
    (out / "peers.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
