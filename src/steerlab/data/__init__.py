"""Data loaders: contrastive pairs (JSONL, CAA A/B JSON), evaluation sets, honesty chats.

``builtin:NAME`` (the sets of :data:`BUILTIN_SETS`) works wherever a loader takes a path.
"""

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
from steerlab.data.honesty import (
    COMPLETIONS,
    DEFAULT_QUESTION,
    INSTRUCTIONS,
    HonestyTemplates,
    held_out,
    honesty_chats,
    load_facts,
    split_statements,
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
from steerlab.data.registry import (
    BUILTIN_SETS,
    BuiltinSet,
    builtin_names,
    builtin_set,
    resolve_data_path,
)

__all__ = [
    "BUILTIN_SETS",
    "COMPLETIONS",
    "DEFAULT_QUESTION",
    "INSTRUCTIONS",
    "ABItem",
    "BuiltinSet",
    "ContrastPair",
    "HarmfulPrompt",
    "HonestyTemplates",
    "MultipleChoiceItem",
    "Statement",
    "StereoSetItem",
    "TruthfulQAMCItem",
    "builtin_names",
    "builtin_pairs",
    "builtin_path",
    "builtin_set",
    "held_out",
    "honesty_chats",
    "load_ab",
    "load_facts",
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
    "resolve_data_path",
    "split_statements",
]
