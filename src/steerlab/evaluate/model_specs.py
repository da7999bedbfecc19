"""Which models an evaluation compares: :class:`EvalModel` entries, parsed from command-line text.

A model is loaded from a source (``"default"``, a Hub id, a folder, a tuning run folder) or
given in memory, and may be steered online by a vector at a coefficient. :func:`parse_models`
reads the CLI's ``LABEL=SOURCE`` and ``MODEL:VECTOR:COEF`` items; :func:`check_sources`
checks every model that will be loaded before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.errors import SpecError
from steerlab.models import check_model_reference
from steerlab.validation import check_layer_indices, check_number, is_int
from steerlab.vector import SteeringVector

__all__ = [
    "EvalModel",
    "check_layers",
    "check_sources",
    "model_entries",
    "parse_models",
    "unique_label",
]


def _check_label(label: Any) -> str:
    if not isinstance(label, str) or not label.strip():
        raise SpecError(f"model label {label!r} must be a non-empty string")
    if "\n" in label or "\r" in label:
        raise SpecError(f"model label {label!r} must not contain a newline")
    return label


def check_layers(layers: Any, what: str) -> tuple[int, ...] | None:
    """Steering layers as a tuple of indices (a single index allowed); None stays None.

    Raises:
        SpecError: naming ``what``: not a list of indices, an empty list, or a negative or
            non-integer index.
    """
    if layers is None:
        return None
    if is_int(layers):
        layers = (layers,)
    return check_layer_indices(layers, what, allow_duplicates=True)


@dataclass(frozen=True)
class EvalModel:
    """One model of a suite run.

    Attributes:
        label: the name shown in tables and plots (non-empty, one line).
        source: what :func:`steerlab.models.load_model` loads (``"default"``, a Hub id, a
            folder, a run folder); with ``model`` given it is only recorded.
        model: an in-memory model (used as it is), with ``tokenizer``.
        tokenizer: the tokenizer of ``model``.
        vector: steer online with this vector (``add`` at every position).
        vector_path: where ``vector`` came from (recorded).
        coefficient: the steering coefficient (raw vector times this).
        layers: steering layers; None: the suite's ``layers``, else the vector's layers.

    Raises:
        SpecError: no source and no model, a model without tokenizer (or the reverse), a bad
            label, a non-finite coefficient, a coefficient or vector path without a vector.
    """

    label: str
    source: str | None = None
    model: nn.Module | None = field(default=None, compare=False, repr=False)
    tokenizer: PreTrainedTokenizerBase | None = field(default=None, compare=False, repr=False)
    vector: SteeringVector | None = field(default=None, hash=False, repr=False)
    vector_path: str | None = None
    coefficient: float = 0.0
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_label(self.label)
        if self.source is None and self.model is None:
            raise SpecError(f"model {self.label!r}: give a source or an in-memory model")
        if self.source is not None and (not isinstance(self.source, str) or not self.source):
            raise SpecError(f"model {self.label!r}: source {self.source!r} is not a path or id")
        if (self.model is None) != (self.tokenizer is None):
            raise SpecError(f"model {self.label!r}: an in-memory model needs its tokenizer")
        coefficient = check_number(self.coefficient, f"model {self.label!r}: coefficient")
        object.__setattr__(self, "coefficient", coefficient)
        if self.vector is None and (self.coefficient != 0.0 or self.vector_path is not None):
            raise SpecError(f"model {self.label!r}: a coefficient or vector path needs a vector")
        if self.vector is not None and not isinstance(self.vector, SteeringVector):
            raise SpecError(f"model {self.label!r}: vector must be a SteeringVector")
        object.__setattr__(self, "layers", check_layers(self.layers, f"model {self.label!r}"))

    @property
    def in_memory(self) -> bool:
        """Whether the model is given in memory rather than loaded from ``source``."""
        return self.model is not None

    @property
    def steered(self) -> bool:
        """Whether the model is steered online."""
        return self.vector is not None

    def describe(self) -> dict[str, Any]:
        """What ``suite.json`` records (and a resumed run compares) about the model."""
        return {
            "label": self.label,
            "source": self.source,
            "in_memory": self.in_memory,
            "vector_path": self.vector_path,
            "vector_sha256": None if self.vector is None else self.vector.sha256(),
            "coefficient": self.coefficient,
            "layers": None if self.layers is None else list(self.layers),
        }


def _default_label(source: str) -> str:
    if source == "default":
        return "untuned"
    name = Path(source.rstrip("/\\")).name
    return name or source


def unique_label(label: str, taken: set[str]) -> str:
    """``label``, or ``label-2``, ``label-3``... when it is taken."""
    if label not in taken:
        return label
    k = 2
    while f"{label}-{k}" in taken:
        k += 1
    return f"{label}-{k}"


def _split_label(item: str) -> tuple[str | None, str]:
    head, sep, rest = item.partition("=")
    if sep and head.strip() and not any(c in head for c in ":/\\"):
        return head.strip(), rest.strip()
    return None, item.strip()


def _split_steered(text: str) -> tuple[str, str, str] | None:
    """``MODEL:VECTOR:COEF`` split from the right; a colon inside VECTOR is kept when only
    that reading names an existing file."""
    head, sep, coef = text.rpartition(":")
    if not sep or ":" not in head:
        return None
    cuts = [i for i, c in enumerate(head) if c == ":"]
    options = [(head[:i].strip(), head[i + 1 :].strip()) for i in reversed(cuts)]
    options = [(m, v) for m, v in options if m and v]
    if not options or not coef.strip():
        return None
    model, vector = next(((m, v) for m, v in options if Path(v).is_file()), options[0])
    return model, vector, coef.strip()


def parse_models(models: str | Sequence[str], steered: Sequence[str] = ()) -> list[EvalModel]:
    """Models from command-line text.

    Args:
        models: a comma-separated list (or a sequence) of sources, each optionally
            ``LABEL=SOURCE``. Default labels: ``default`` -> ``untuned``, otherwise the
            folder's (or Hub id's) last name, repeated labels made unique with ``-2``, ``-3``.
        steered: ``MODEL:VECTOR:COEF`` or ``LABEL=MODEL:VECTOR:COEF`` items (split from the
            right, so paths may hold colons): ``MODEL`` is a label from ``models`` or a
            source, ``VECTOR`` a steering-vector file, ``COEF`` a number. Default label
            ``f"{model_label}+steer({coef:g})"``.

    Returns:
        The models, those of ``models`` first, in order.

    Raises:
        SpecError: an empty item, a repeated explicit label, a malformed steered item or a
            coefficient that is not a finite number (naming it).
        VectorError: a vector file that is missing or unreadable (naming the file).
    """
    items = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    items = [m for m in items if m.strip()] if isinstance(models, str) else items
    parsed: list[tuple[str | None, str]] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise SpecError(f"model {item!r} is empty")
        label, source = _split_label(item)
        if not source:
            raise SpecError(f"model {item!r} has no source after '='")
        parsed.append((label, source))
    steered_parsed: list[tuple[str | None, str, str, float]] = []
    for spec in steered:
        label, rest = _split_label(spec)
        parts = _split_steered(rest)
        if parts is None:
            raise SpecError(f"steered model {spec!r}: expected MODEL:VECTOR:COEF")
        model, vector_path, coef_text = parts
        try:
            coefficient = float(coef_text)
        except ValueError:
            raise SpecError(
                f"steered model {spec!r}: coefficient {coef_text!r} is not a number"
            ) from None
        if not math.isfinite(coefficient):
            raise SpecError(f"steered model {spec!r}: coefficient {coef_text!r} is not finite")
        steered_parsed.append((label, model, vector_path, coefficient))

    explicit = [label for label, _ in parsed if label] + [s[0] for s in steered_parsed if s[0]]
    repeated = sorted({x for x in explicit if explicit.count(x) > 1})
    if repeated:
        raise SpecError(f"model label {repeated[0]!r} is given twice")
    taken = set(explicit)
    out: list[EvalModel] = []
    by_label: dict[str, str] = {}
    for label, source in parsed:
        if label is None:
            label = unique_label(_default_label(source), taken)
            taken.add(label)
        by_label[label] = source
        out.append(EvalModel(label=label, source=source))
    for label, model, vector_path, coefficient in steered_parsed:
        if model in by_label:
            source, base_label = by_label[model], model
        else:
            source, base_label = model, _default_label(model)
        if label is None:
            label = unique_label(f"{base_label}+steer({coefficient:g})", taken)
            taken.add(label)
        vector = SteeringVector.load(vector_path)
        out.append(
            EvalModel(
                label=label,
                source=source,
                vector=vector,
                vector_path=vector_path,
                coefficient=coefficient,
            )
        )
    if not out:
        raise SpecError("no models to evaluate")
    return out


def model_entries(models: Sequence[EvalModel | str] | str) -> list[EvalModel]:
    """The models of a run: :class:`EvalModel` entries as given, sources parsed.

    Args:
        models: entries and/or sources (``"LABEL=SOURCE"``); a string is read as a
            comma-separated list (see :func:`parse_models`).

    Raises:
        SpecError: no model, an entry that is neither, or a label used twice.
    """
    if isinstance(models, str):
        return parse_models(models)
    texts = [m for m in models if isinstance(m, str)]
    parsed = iter(parse_models(texts)) if texts else iter(())
    entries = [next(parsed) if isinstance(m, str) else m for m in models]
    for entry in entries:
        if not isinstance(entry, EvalModel):
            raise SpecError(f"model {entry!r} is neither an EvalModel nor a source")
    labels = [e.label for e in entries]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise SpecError(f"model label {repeated[0]!r} is used twice")
    if not entries:
        raise SpecError("no models to evaluate")
    return entries


def check_sources(entries: Sequence[EvalModel]) -> None:
    """Check every model that will be loaded (see :func:`steerlab.models.check_model_reference`).

    Raises:
        ModelLoadError: the first reference that names no folder, no valid Hub id, or a Hub
            model that is neither cached nor reachable.
    """
    for source in dict.fromkeys(e.source for e in entries if not e.in_memory and e.source):
        check_model_reference(source)
