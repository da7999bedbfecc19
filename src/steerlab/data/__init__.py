"""Data loaders: contrastive pairs (JSONL, CAA A/B JSON), evaluation sets, chats, honesty chats.

``builtin:NAME`` (the sets of :data:`BUILTIN_SETS`) works wherever a loader takes a path, and
``[NAME=]KIND:PATH`` specs are parsed by :func:`parse_source_spec`; both live in
:mod:`steerlab.data.registry`, the one place that resolves data names.

Modules: :mod:`~steerlab.data.registry` (built-in sets, spec parsing),
:mod:`~steerlab.data.readers` (file reading with one-line errors), :mod:`~steerlab.data.chats`
(chat files), :mod:`~steerlab.data.pairs` (contrastive pairs), one module per evaluation
format (:mod:`~steerlab.data.mmlu`, :mod:`~steerlab.data.ab`, :mod:`~steerlab.data.harmful`,
:mod:`~steerlab.data.truthfulqa`, :mod:`~steerlab.data.stereoset`,
:mod:`~steerlab.data.statements`) gathered by :mod:`~steerlab.data.evalsets`,
:mod:`~steerlab.data.honesty` (honesty prompts and the held-out split) and
:mod:`~steerlab.data.qa` (honest/deceptive Q/A data made with a model).
"""

from steerlab.data.chats import Chat, chat_from_item, chats_sha256, load_chats
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
    builtin_format,
    builtin_names,
    builtin_set,
    parse_source_spec,
    resolve_data_path,
)

__all__ = [
    "BUILTIN_SETS",
    "COMPLETIONS",
    "DEFAULT_QUESTION",
    "INSTRUCTIONS",
    "ABItem",
    "BuiltinSet",
    "Chat",
    "ContrastPair",
    "HarmfulPrompt",
    "HonestyTemplates",
    "MultipleChoiceItem",
    "Statement",
    "StereoSetItem",
    "TruthfulQAMCItem",
    "builtin_format",
    "builtin_names",
    "builtin_pairs",
    "builtin_path",
    "builtin_set",
    "chat_from_item",
    "chats_sha256",
    "held_out",
    "honesty_chats",
    "load_ab",
    "load_chats",
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
    "parse_source_spec",
    "resolve_data_path",
    "split_statements",
]
