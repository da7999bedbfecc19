"""Data loaders: contrastive pairs (JSONL, CAA A/B JSON) and the built-in small sets."""

from steerlab.data.pairs import (
    ContrastPair,
    builtin_pairs,
    builtin_path,
    load_pairs,
    pair_examples,
    pairs_from_ab,
    pairs_sha256,
)

__all__ = [
    "ContrastPair",
    "builtin_pairs",
    "builtin_path",
    "load_pairs",
    "pair_examples",
    "pairs_from_ab",
    "pairs_sha256",
]
