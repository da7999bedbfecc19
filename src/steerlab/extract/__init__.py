"""Extracting steering vectors (contrastive methods over paired data, base-vs-tuned
differences) and comparing them per layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.data.pairs import ContrastPair, pair_examples, pairs_sha256
from steerlab.errors import DataError
from steerlab.extract.comparison import Comparison, CosineRow, compare
from steerlab.extract.contrastive import METHODS, direction
from steerlab.layers import LayerSelection
from steerlab.models import model_identity
from steerlab.record import record
from steerlab.validation import check_choice, check_int
from steerlab.vector import SteeringVector, VectorMetadata

__all__ = ["METHODS", "Comparison", "CosineRow", "compare", "direction", "extract"]


def extract(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[ContrastPair],
    method: str = "pca_diff",
    layers: LayerSelection = "all",
    position: Literal["last", "mean"] = "last",
    *,
    batch_size: int = 16,
    seed: int = 0,
    layers_path: str | None = None,
    progress: bool = True,
) -> SteeringVector:
    """Extract a steering vector from contrastive pairs, all layers from one pass.

    Args:
        model: a transformers causal LM.
        tokenizer: its tokenizer.
        pairs: contrastive pairs (see :func:`steerlab.load_pairs`).
        method: ``mean_diff``, ``pca_diff``, ``pca_center`` or ``probe``.
        layers: layer selection, default every layer.
        position: ``last`` token of each text, or ``mean`` over the reply's tokens.
        batch_size: texts per forward pass.
        seed: seed for methods with randomness (recorded in the metadata).
        layers_path: override for the decoder block list.
        progress: show a progress bar.

    Returns:
        A :class:`SteeringVector` whose + side is the pairs' positive side.
    """
    check_choice(method, "method", METHODS)
    check_int(batch_size, "batch_size", minimum=1)
    if not pairs:
        raise DataError("no contrastive pairs to extract from")
    examples = []
    for pair in pairs:
        positive, negative = pair_examples(tokenizer, pair)
        examples.extend([positive, negative])
    activations = record(
        model,
        tokenizer,
        examples,
        layers,
        position,
        batch_size=batch_size,
        layers_path=layers_path,
        progress=progress,
    )
    directions = {}
    norms = {}
    for layer, acts in activations.items():
        positive_acts, negative_acts = acts[0::2], acts[1::2]
        directions[layer] = direction(method, positive_acts, negative_acts, seed)
        norms[layer] = float(acts.norm(dim=-1).mean())
    metadata = VectorMetadata.for_model(
        model_identity(model),
        method,
        position=position,
        n_examples=len(pairs),
        data_sha256=pairs_sha256(pairs),
        seed=seed,
    )
    return SteeringVector(directions, metadata, norms)
