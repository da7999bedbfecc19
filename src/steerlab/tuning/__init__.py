"""Fine-tuning: chat data with an assistant-only loss, LoRA or layer SFT via transformers.

The plumbing here (:class:`SteerlabTrainer`, :func:`finetune`) is shared by model-diff
steering vectors (fine-tune, then diff activations) and representation tuning
(:func:`tune`: a ``SteerlabTrainer`` subclass adding a cosine loss on activations).
"""

from steerlab.tuning.data import (
    IGNORE_INDEX,
    ChatCollator,
    ChatDataset,
    assistant_spans,
    chats_sha256,
    collator_for,
    load_chats,
    tokenize_chat,
)
from steerlab.tuning.finetune import (
    LOSS_LOG_FILE,
    PROVENANCE_FILE,
    FinetuneConfig,
    FinetuneResult,
    LossLogCallback,
    SteerlabTrainer,
    base_model_id,
    finetune,
    last_checkpoint,
    linear_module_names,
    prepare_model,
    read_loss_log,
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

__all__ = [
    "IGNORE_INDEX",
    "LOSS_LOG_FILE",
    "POSITIONS",
    "PROVENANCE_FILE",
    "ChatCollator",
    "ChatDataset",
    "FinetuneConfig",
    "FinetuneResult",
    "LossLogCallback",
    "RepresentationConfig",
    "RepresentationTrainer",
    "SteerlabTrainer",
    "assistant_spans",
    "base_model_id",
    "chats_sha256",
    "collator_for",
    "cosine_loss",
    "finetune",
    "last_checkpoint",
    "linear_module_names",
    "load_chats",
    "mean_cosine",
    "position_mask",
    "prepare_model",
    "read_loss_log",
    "tokenize_chat",
    "training_arguments",
    "tune",
]
