"""Model-diff vectors: the mean activation difference between a fine-tuned model and its base.

Both models read the same inputs; at every chosen layer and position the difference
(tuned - base) is taken per input, and the vector is its mean (``diff_method="mean"``) or
the first principal component of the differences oriented along that mean (``"pca"``).
Recording costs one forward pass per model and batch, each stopping after the deepest
chosen layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import format_chat, messages_for
from steerlab.errors import DataError, ModelMismatchError, SpecError
from steerlab.extract.contrastive import pca_diff
from steerlab.layers import LayerSelection
from steerlab.models import model_identity
from steerlab.provenance import sha256_of_records
from steerlab.record import TextExample, record
from steerlab.vector import SteeringVector, VectorMetadata

DIFF_METHODS = ("mean", "pca")


def question_examples(
    tokenizer: PreTrainedTokenizerBase, questions: Sequence[str], system: str | None = None
) -> list[TextExample]:
    """Chat prompts ending at the assistant header: ``position="last"`` reads the last prompt
    token, where the model decides how to answer."""
    return [TextExample(format_chat(tokenizer, messages_for(q, system))) for q in questions]


def answer_examples(
    tokenizer: PreTrainedTokenizerBase, chats: Sequence[Sequence[dict[str, str]]]
) -> list[TextExample]:
    """Whole chats with the final assistant reply marked, for ``position="mean"``."""
    out = []
    for number, chat in enumerate(chats):
        if not chat or chat[-1]["role"] != "assistant":
            raise DataError(f"chat {number} does not end with an assistant reply")
        prompt = format_chat(tokenizer, list(chat[:-1]), add_generation_prompt=True)
        out.append(TextExample(prompt + chat[-1]["content"], span_start=len(prompt)))
    return out


def check_same_architecture(base: nn.Module, tuned: nn.Module) -> None:
    """Refuse two models of different architecture or size.

    Raises:
        ModelMismatchError: naming both models' type, hidden size and layer count.
    """
    a, b = model_identity(base), model_identity(tuned)
    if (a.model_type, a.hidden_size, a.num_layers) != (b.model_type, b.hidden_size, b.num_layers):
        raise ModelMismatchError(
            f"base {a.model_id} is {a.model_type} (hidden {a.hidden_size}, {a.num_layers} "
            f"layers) but tuned {b.model_id} is {b.model_type} (hidden {b.hidden_size}, "
            f"{b.num_layers} layers); a model-diff vector needs the same architecture"
        )


def model_diff(
    base: nn.Module,
    tuned: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample | str],
    layers: LayerSelection = "all",
    position: Literal["last", "mean"] = "last",
    *,
    diff_method: str = "mean",
    batch_size: int = 16,
    layers_path: str | None = None,
    progress: bool = True,
) -> SteeringVector:
    """The activation difference tuned - base on the same inputs, as a SteeringVector.

    Args:
        base: the base model.
        tuned: its fine-tuned copy (same architecture and tokenizer).
        tokenizer: the shared tokenizer.
        examples: inputs (see :func:`question_examples` and :func:`answer_examples`).
        layers: layer selection.
        position: ``last`` token or ``mean`` over the marked span (the answer).
        diff_method: ``mean`` of differences, or ``pca`` (first component, oriented).
        batch_size: inputs per forward pass.
        layers_path: override for the decoder block list (same for both models).
        progress: show progress bars.

    Returns:
        A vector with method ``model_diff`` whose metadata names both models; + means
        "more like the tuned model".
    """
    if diff_method not in DIFF_METHODS:
        raise SpecError(f"diff method {diff_method!r} is not one of {', '.join(DIFF_METHODS)}")
    if not examples:
        raise DataError("no inputs to compare the models on")
    check_same_architecture(base, tuned)
    settings = {"batch_size": batch_size, "layers_path": layers_path, "progress": progress}
    base_acts = record(base, tokenizer, examples, layers, position, **settings)  # type: ignore[arg-type]
    tuned_acts = record(tuned, tokenizer, examples, layers, position, **settings)  # type: ignore[arg-type]
    directions, norms = {}, {}
    for layer, before in base_acts.items():
        after = tuned_acts[layer]
        if diff_method == "mean":
            directions[layer] = (after.double() - before.double()).mean(dim=0).float()
        else:
            directions[layer] = pca_diff(after, before)
        norms[layer] = float(before.norm(dim=-1).mean())
    texts = [e if isinstance(e, str) else [e.text, e.span_start] for e in examples]
    base_id, tuned_id = model_identity(base), model_identity(tuned)
    metadata = VectorMetadata.for_model(
        base_id,
        "model_diff",
        position=position,
        n_examples=len(examples),
        data_sha256=sha256_of_records(texts),
        extra={
            "base_model": base_id.model_id,
            "tuned_model": tuned_id.model_id,
            "diff_method": diff_method,
            "sign": "tuned - base",
        },
    )
    return SteeringVector(directions, metadata, norms)
