"""Data loaders: contrastive pairs (JSONL, CAA A/B JSON) and the built-in small sets."""

from steerlab.data.evalsets import (
    ABItem,
    HarmfulPrompt,
    MultipleChoiceItem,
    Statement,
    StereoSetItem,
    TruthfulQAMCItem,
    load_ab,
    load_harmful,
    load_mmlu,
    load_statements,
    load_stereoset,
    load_task_data,
    load_truthfulqa_mc,
)
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
    "ABItem",
    "ContrastPair",
    "HarmfulPrompt",
    "MultipleChoiceItem",
    "Statement",
    "StereoSetItem",
    "TruthfulQAMCItem",
    "builtin_pairs",
    "builtin_path",
    "load_ab",
    "load_harmful",
    "load_mmlu",
    "load_pairs",
    "load_statements",
    "load_stereoset",
    "load_task_data",
    "load_truthfulqa_mc",
    "pair_examples",
    "pairs_from_ab",
    "pairs_sha256",
]
