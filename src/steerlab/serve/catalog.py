"""The vectors a server offers: read once at start, checked against the served model.

Every ``*.safetensors`` steerlab vector of the folders (or files) given is listed by its file
stem. A vector made on another kind of model stays listed, marked incompatible with the reason,
so that a client asking for it gets a 400 that says why rather than "unknown vector". Vectors
without activation norms get them measured once here, since ``scale="norm"`` (the default)
needs them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.errors import MeasuredNormsNotice, ModelMismatchError, VectorError
from steerlab.generate import with_norms
from steerlab.models import model_identity
from steerlab.vector import SteeringVector

SUGGESTED_COEFFICIENTS = (-0.05, 0.0, 0.05)
"""Offered when a vector has no calibration: on the embedded model, 0.05 of the activation
norm on each of the middle seven layers changes the mood of the text visibly and keeps it
fluent (the demo's generate stage)."""


def shipped_vector_files() -> list[Path]:
    """The vectors shipped with steerlab for the embedded model (``happy_sad``)."""
    folder = resources.files("steerlab.serve") / "vectors"
    return sorted(Path(str(folder)).glob("*.safetensors"))


def middle_layers(num_layers: int, available: Sequence[int]) -> list[int]:
    """The layers between 40% and 60% of the depth that the vector has (else all it has)."""
    low, high = round(0.4 * num_layers), round(0.6 * num_layers)
    chosen = [layer for layer in available if low <= layer <= high]
    return chosen or list(available)


def layer_text(layers: Sequence[int]) -> str:
    """``[12, 13, 14]`` -> ``"12-14"``; anything else as a comma list."""
    values = list(layers)
    if len(values) > 1 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


@dataclass(frozen=True)
class CatalogEntry:
    """One vector on offer.

    Attributes:
        name: what requests call it (the file stem).
        path: its file.
        vector: the vector (with activation norms where it is compatible), or None when it
            could not be read.
        error: why it cannot steer the served model, or None.
    """

    name: str
    path: Path
    vector: SteeringVector | None
    error: str | None

    def default_layers(self) -> list[int]:
        """The calibrated layers, else the middle layers the vector has."""
        assert self.vector is not None
        calibration = self.vector.calibration
        if calibration is not None:
            return list(calibration["layers"])
        return middle_layers(self.vector.metadata.num_layers, self.vector.layers)

    def default_scale(self) -> str:
        """The scale the suggested coefficients are measured in."""
        calibration = None if self.vector is None else self.vector.calibration
        return "norm" if calibration is None else str(calibration["scale"])

    def suggested_coefficients(self) -> list[float]:
        """The calibrated coefficients, else :data:`SUGGESTED_COEFFICIENTS`."""
        if self.vector is not None and self.vector.calibration is not None:
            return list(self.vector.recommended_coefficients())
        return list(SUGGESTED_COEFFICIENTS)

    def describe(self) -> dict[str, Any]:
        """The ``/v1/vectors`` record of this vector."""
        record: dict[str, Any] = {
            "id": self.name,
            "object": "steering_vector",
            "file": self.path.name,  # not the server's folders
            "compatible": self.error is None,
            "error": self.error,
        }
        if self.vector is None:
            return record
        meta = self.vector.metadata
        norms = self.vector.activation_norms or {}
        record.update(
            method=meta.method,
            model_id=meta.model_id,
            model_type=meta.model_type,
            num_layers=meta.num_layers,
            hidden_size=meta.hidden_size,
            n_examples=meta.n_examples,
            created=meta.created,
            layers=list(self.vector.layers),
            layer_norms=[
                {
                    "layer": layer,
                    "norm": float(self.vector[layer].norm()),
                    "activation_norm": norms.get(layer),
                }
                for layer in self.vector.layers
            ],
        )
        if self.error is None:
            record.update(
                default_layers=layer_text(self.default_layers()),
                default_scale=self.default_scale(),
                suggested_coefficients=self.suggested_coefficients(),
            )
        return record


def _vector_files(sources: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            files.extend(sorted(path.glob("*.safetensors")))
        elif path.is_file():
            files.append(path)
        else:
            raise VectorError(f"{path}: no such vector file or folder")
    return files


class VectorCatalog:
    """The vectors of some folders and files, by name, checked against one model."""

    def __init__(self, entries: Sequence[CatalogEntry]) -> None:
        self.entries = {entry.name: entry for entry in entries}

    @classmethod
    def load(
        cls,
        sources: Iterable[str | Path],
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        layers_path: str | None = None,
    ) -> VectorCatalog:
        """Read every vector of ``sources`` (folders: their ``*.safetensors``; or files).

        Raises:
            VectorError: a source that does not exist, or two vectors with one name.
        """
        identity = model_identity(model)
        entries: list[CatalogEntry] = []
        seen: dict[str, Path] = {}
        for path in _vector_files(sources):
            name = path.stem
            if name in seen:
                raise VectorError(
                    f"two vectors are called {name!r}: {seen[name]} and {path} (rename one)"
                )
            seen[name] = path
            try:
                vector = SteeringVector.load(path)
            except VectorError as exc:
                entries.append(CatalogEntry(name, path, None, str(exc)))
                continue
            try:
                vector.check_compatible(identity)
            except ModelMismatchError as exc:
                entries.append(CatalogEntry(name, path, vector, str(exc)))
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MeasuredNormsNotice)
                vector = with_norms(model, tokenizer, vector, "all", layers_path)
            entries.append(CatalogEntry(name, path, vector, None))
        return cls(entries)

    def add_shipped(
        self,
        files: Iterable[Path],
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        layers_path: str | None = None,
    ) -> None:
        """Offer the shipped vectors that fit the model and whose names are still free."""
        for path in files:
            if path.stem in self.entries:
                continue
            (entry,) = VectorCatalog.load([path], model, tokenizer, layers_path=layers_path)
            if entry.error is None:
                self.entries[entry.name] = entry

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries.values())

    def describe(self) -> list[dict[str, Any]]:
        """The ``/v1/vectors`` records, by name."""
        return [self.entries[name].describe() for name in sorted(self.entries)]

    def get(self, name: str) -> CatalogEntry | None:
        """The entry called ``name``, or None."""
        return self.entries.get(name)
