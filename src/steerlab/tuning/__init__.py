"""Fine-tuning: chat data with an assistant-only loss, LoRA or layer SFT via transformers.

The plumbing here (:class:`SteerlabTrainer`, :func:`finetune`) is shared by model-diff
steering vectors (fine-tune, then diff activations) and representation tuning
(:func:`tune`: a ``SteerlabTrainer`` subclass adding a cosine loss on activations).

Modules, one idea each: :mod:`~steerlab.tuning.config` (the settings),
:mod:`~steerlab.tuning.data` (tokenising chats with a loss mask),
:mod:`~steerlab.tuning.prepare` (LoRA or layer freezing, TrainingArguments),
:mod:`~steerlab.tuning.trainer` (the Trainer and its loss log),
:mod:`~steerlab.tuning.runs` (a run folder's files and :func:`read_run`),
:mod:`~steerlab.tuning.finetune` (:func:`finetune`), :mod:`~steerlab.tuning.sources`
(training chats from statements, pairs or chats), :mod:`~steerlab.tuning.represent`
(representation tuning). Chat files are read by :mod:`steerlab.data.chats`.
"""

from steerlab.data.chats import Chat, chats_sha256, load_chats
from steerlab.tuning.config import SCHEDULERS, FinetuneConfig
from steerlab.tuning.data import (
    IGNORE_INDEX,
    ChatCollator,
    ChatDataset,
    assistant_spans,
    collator_for,
    tokenize_chat,
)
from steerlab.tuning.finetune import FinetuneResult, finetune
from steerlab.tuning.prepare import (
    base_model_id,
    linear_module_names,
    prepare_model,
    training_arguments,
)
from steerlab.tuning.represent import (
    POSITIONS,
    RepresentationConfig,
    RepresentationTrainer,
    cosine_loss,
    mean_cosine,
    position_mask,
    tune,
)
from steerlab.tuning.runs import (
    LOSS_LOG_FILE,
    PROVENANCE_FILE,
    RunRecord,
    last_checkpoint,
    read_loss_log,
    read_run,
)
from steerlab.tuning.sources import TuningData, detect_kind, tuning_chats
from steerlab.tuning.trainer import LossLogCallback, SteerlabTrainer

__all__ = [
    "IGNORE_INDEX",
    "LOSS_LOG_FILE",
    "POSITIONS",
    "PROVENANCE_FILE",
    "SCHEDULERS",
    "Chat",
    "ChatCollator",
    "ChatDataset",
    "FinetuneConfig",
    "FinetuneResult",
    "LossLogCallback",
    "RepresentationConfig",
    "RepresentationTrainer",
    "RunRecord",
    "SteerlabTrainer",
    "TuningData",
    "assistant_spans",
    "base_model_id",
    "chats_sha256",
    "collator_for",
    "cosine_loss",
    "detect_kind",
    "finetune",
    "last_checkpoint",
    "linear_module_names",
    "load_chats",
    "mean_cosine",
    "position_mask",
    "prepare_model",
    "read_loss_log",
    "read_run",
    "tokenize_chat",
    "training_arguments",
    "tune",
    "tuning_chats",
]
