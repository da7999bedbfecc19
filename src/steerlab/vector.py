"""SteeringVector: a frozen per-layer direction with the identity of the model it came from."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from steerlab import gguf_vectors
from steerlab.errors import ModelMismatchError, VectorError
from steerlab.models import ModelIdentity, model_identity
from steerlab.provenance import atomic_path, git_revision, library_version, utc_now
from steerlab.validation import is_int, is_number

FORMAT = "steerlab.vector/1"
_META_KEY = "steerlab"


@dataclass(frozen=True)
class VectorMetadata:
    """How a steering vector was made and which model it belongs to.

    Attributes:
        model_id: Hub id or path of the source model.
        model_type: ``config.model_type`` of the source model.
        hidden_size: residual-stream width.
        num_layers: number of decoder blocks of the source model.
        method: extraction method (``mean_diff``, ``pca_diff``, ``pca_center``, ``probe``,
            ``model_diff``) or an arithmetic expression of other vectors' methods.
        position: where activations were read (``last``, ``mean``, ``all``).
        n_examples: number of pairs (or prompts) the vector was computed from.
        data_sha256: sha256 of the data records.
        library_version: steerlab version that made it.
        git_revision: steerlab git commit, when known.
        created: ISO-8601 UTC creation time.
        seed: random seed used, if any.
        extra: further JSON-able facts (e.g. both models of a model-diff vector).
    """

    model_id: str
    model_type: str
    hidden_size: int
    num_layers: int
    method: str
    position: str = "last"
    n_examples: int = 0
    data_sha256: str = ""
    library_version: str = field(default_factory=library_version)
    git_revision: str | None = field(default_factory=git_revision)
    created: str = field(default_factory=utc_now)
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> ModelIdentity:
        """The source model's identity."""
        return ModelIdentity(self.model_id, self.model_type, self.hidden_size, self.num_layers)

    @classmethod
    def for_model(cls, identity: ModelIdentity, method: str, **facts: Any) -> VectorMetadata:
        """Metadata for a vector made on the model with ``identity``."""
        return cls(
            model_id=identity.model_id,
            model_type=identity.model_type,
            hidden_size=identity.hidden_size,
            num_layers=identity.num_layers,
            method=method,
            **facts,
        )

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in the safetensors header)."""
        data = asdict(self)
        data["extra"] = dict(self.extra)
        return json.dumps(data, sort_keys=True)

    def recipe(self) -> dict[str, Any]:
        """How the vector was made, without when or by which steerlab build.

        What a resumable run records and compares about its vector: re-extracting the same
        vector later (another time, another commit) must not count as other settings.
        """
        data = json.loads(self.to_json())
        for volatile in ("created", "git_revision", "library_version"):
            data.pop(volatile, None)
        # A calibration says how to use the vector, not how it was made.
        data.get("extra", {}).pop(CALIBRATION_KEY, None)
        return data

    @classmethod
    def from_json(cls, text: str, where: str) -> VectorMetadata:
        """Parse :meth:`to_json` output; ``where`` names the file in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VectorError(f"{where}: metadata is not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise VectorError(f"{where}: metadata is not a JSON object")
        names = {f for f in cls.__dataclass_fields__}
        missing = {"model_type", "hidden_size", "num_layers", "method"} - set(data)
        if missing:
            raise VectorError(f"{where}: metadata lacks {', '.join(sorted(missing))}")
        for key, kind in _METADATA_TYPES.items():
            value = data.get(key)
            if key in data and value is not None and not _is_kind(value, kind):
                raise VectorError(
                    f"{where}: metadata field {key!r} must be {kind.__name__}, got {value!r}"
                )
        return cls(**{k: v for k, v in data.items() if k in names})


# Types of the metadata fields a loaded file must respect (None allowed where optional).
_METADATA_TYPES: dict[str, type] = {
    "model_id": str,
    "model_type": str,
    "hidden_size": int,
    "num_layers": int,
    "method": str,
    "position": str,
    "n_examples": int,
    "data_sha256": str,
    "library_version": str,
    "git_revision": str,
    "created": str,
    "seed": int,
    "extra": dict,
}


CALIBRATION_KEY = "calibration"
"""Key of ``VectorMetadata.extra`` holding ``steerlab calibrate``'s recommendation."""
_CALIBRATION_SCALES = ("vector", "unit", "norm")


def check_calibration(record: Mapping[str, Any], where: str = "calibration") -> dict[str, Any]:
    """A calibration record, validated: ``scale`` (what the coefficients are measured in),
    ``layers`` (the steered layers it was measured at), ``positive``/``negative`` (the
    recommended coefficient per sign, or None where no coefficient passed) and any further
    JSON-able facts (bounds, ranges, date).

    Raises:
        VectorError: naming the field at fault.
    """
    if not isinstance(record, Mapping):
        raise VectorError(f"{where}: expected an object, got {type(record).__name__}")
    out = dict(record)
    if out.get("scale") not in _CALIBRATION_SCALES:
        raise VectorError(f"{where}: scale {out.get('scale')!r} is not one of vector, unit, norm")
    layers = out.get("layers")
    if not isinstance(layers, list | tuple) or not layers or not all(is_int(x) for x in layers):
        raise VectorError(f"{where}: layers {layers!r} is not a list of layer indices")
    out["layers"] = [int(x) for x in layers]
    for sign in ("positive", "negative"):
        value = out.get(sign)
        if value is not None and not is_number(value):
            raise VectorError(f"{where}: {sign} {value!r} is not a finite number or null")
        out[sign] = None if value is None else float(value)
    if out["positive"] is not None and out["positive"] < 0:
        raise VectorError(f"{where}: positive {out['positive']} is below 0")
    if out["negative"] is not None and out["negative"] > 0:
        raise VectorError(f"{where}: negative {out['negative']} is above 0")
    return out


def _is_kind(value: Any, kind: type) -> bool:
    return is_int(value) if kind is int else isinstance(value, kind)


def _frozen_tensor(value: torch.Tensor) -> torch.Tensor:
    return value.detach().to("cpu").contiguous().clone()


@dataclass(frozen=True, eq=False)
class SteeringVector:
    """Per-layer steering directions plus provenance. Immutable: operations return new vectors.

    Attributes:
        directions: ``{layer: tensor of shape (hidden_size,)}``.
        metadata: :class:`VectorMetadata`.
        activation_norms: ``{layer: mean L2 norm of that layer's activations}`` on the data
            the vector was made from; lets a coefficient be read as a fraction of that norm.
    """

    directions: Mapping[int, torch.Tensor]
    metadata: VectorMetadata
    activation_norms: Mapping[int, float] | None = None

    def __post_init__(self) -> None:
        meta = self.metadata
        if not self.directions:
            raise VectorError("a steering vector needs at least one layer")
        clean: dict[int, torch.Tensor] = {}
        for layer in sorted(self.directions):
            tensor = self.directions[layer]
            if not is_int(layer):
                raise VectorError(f"layer key {layer!r} is not an integer")
            if not 0 <= layer < meta.num_layers:
                raise VectorError(
                    f"layer {layer} is out of range for a {meta.num_layers}-layer model"
                )
            if not isinstance(tensor, torch.Tensor) or tensor.ndim != 1:
                raise VectorError(f"layer {layer}: direction must be a 1-D tensor")
            if tensor.shape[0] != meta.hidden_size:
                raise VectorError(
                    f"layer {layer}: direction has size {tensor.shape[0]}, "
                    f"expected hidden size {meta.hidden_size}"
                )
            if not tensor.is_floating_point():
                raise VectorError(f"layer {layer}: direction must be floating point")
            if not bool(torch.isfinite(tensor).all()):
                raise VectorError(f"layer {layer}: direction contains NaN or inf")
            clean[layer] = _frozen_tensor(tensor)
        object.__setattr__(self, "directions", MappingProxyType(clean))
        if self.activation_norms is not None:
            norms = {int(k): float(v) for k, v in self.activation_norms.items()}
            bad = [k for k, v in norms.items() if not math.isfinite(v) or v < 0]
            stray = sorted(set(norms) - set(clean))
            if stray:
                raise VectorError(
                    f"activation norm given for layer {stray[0]}, which has no direction"
                )
            if bad:
                raise VectorError(f"layer {bad[0]}: activation norm is not a finite value >= 0")
            object.__setattr__(self, "activation_norms", MappingProxyType(norms))

    # -- views -------------------------------------------------------------------------
    @property
    def layers(self) -> tuple[int, ...]:
        """Layers the vector has a direction for, ascending."""
        return tuple(self.directions)

    @property
    def identity(self) -> ModelIdentity:
        """Identity of the source model."""
        return self.metadata.identity

    def __getitem__(self, layer: int) -> torch.Tensor:
        if layer not in self.directions:
            raise VectorError(f"the vector has no layer {layer}; it has {_span(self.layers)}")
        # A copy, so that in-place edits cannot change this frozen vector.
        return self.directions[layer].clone()

    def __len__(self) -> int:
        return len(self.directions)

    def as_tensor(self) -> torch.Tensor:
        """All directions stacked: shape ``(len(layers), hidden_size)``."""
        return torch.stack([self.directions[layer] for layer in self.layers])

    def norms(self) -> dict[int, float]:
        """L2 norm of the direction at each layer."""
        return {layer: float(v.norm()) for layer, v in self.directions.items()}

    def select(self, layers: Iterable[int]) -> SteeringVector:
        """The same vector restricted to ``layers`` (each must be present)."""
        chosen = {layer: self[layer] for layer in layers}
        norms = self.activation_norms
        return replace(
            self,
            directions=chosen,
            activation_norms=None if norms is None else {k: norms[k] for k in chosen if k in norms},
        )

    @property
    def calibration(self) -> dict[str, Any] | None:
        """``steerlab calibrate``'s recommendation stored in the vector (see
        :func:`check_calibration`), or None."""
        record = self.metadata.extra.get(CALIBRATION_KEY)
        return None if record is None else check_calibration(record)

    def with_calibration(self, record: Mapping[str, Any]) -> SteeringVector:
        """The same vector carrying ``record`` as its calibration (replacing any earlier)."""
        extra = {**self.metadata.extra, CALIBRATION_KEY: check_calibration(record)}
        return replace(self, metadata=replace(self.metadata, extra=extra))

    def recommended_coefficients(self) -> tuple[float, ...]:
        """The calibrated coefficients, ascending: negative, 0 and positive (those present).

        Raises:
            VectorError: the vector has no calibration.
        """
        record = self.calibration
        if record is None:
            raise VectorError(
                "the vector has no calibration: run `steerlab calibrate --vector FILE --write` "
                "(or steerlab.calibrate(...).apply_to(vector)) first"
            )
        values = [record["negative"], 0.0, record["positive"]]
        return tuple(float(v) for v in values if v is not None)

    def with_activation_norms(self, norms: Mapping[int, float]) -> SteeringVector:
        """The same vector recording ``norms`` (``{layer: typical activation norm}``) for its
        layers; layers ``norms`` lacks keep the norm they had (if any)."""
        merged = {**(self.activation_norms or {}), **{int(k): float(v) for k, v in norms.items()}}
        return replace(
            self, activation_norms={k: v for k, v in merged.items() if k in self.directions}
        )

    def sha256(self, layers: Sequence[int] | None = None) -> str:
        """sha256 of the directions (layer, dtype, shape and raw bytes), for provenance.

        Args:
            layers: the layers to hash, in this order; None: all of them, ascending.
        """
        digest = hashlib.sha256()
        for layer in self.layers if layers is None else layers:
            tensor = self.directions[layer].detach().to("cpu").contiguous()
            digest.update(f"{layer}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def normalized(self) -> SteeringVector:
        """Unit-norm direction at every layer.

        Raises:
            VectorError: if a layer's direction is zero.
        """
        out = {}
        for layer, v in self.directions.items():
            norm = v.norm()
            if float(norm) == 0.0:
                raise VectorError(f"layer {layer}: cannot normalise a zero direction")
            out[layer] = v / norm
        return self._derived(out, f"normalize({self.metadata.method})")

    def cosine(self, other: SteeringVector) -> dict[int, float]:
        """Cosine similarity with ``other`` at every layer both vectors have."""
        self._check_same_space(other)
        shared = [layer for layer in self.layers if layer in other.directions]
        return {
            layer: float(
                torch.nn.functional.cosine_similarity(
                    self.directions[layer].double(), other.directions[layer].double(), dim=0
                )
            )
            for layer in shared
        }

    # -- arithmetic --------------------------------------------------------------------
    def _derived(self, directions: Mapping[int, torch.Tensor], method: str) -> SteeringVector:
        meta = replace(
            self.metadata,
            method=method,
            created=utc_now(),
            library_version=library_version(),
            git_revision=git_revision(),
        )
        return SteeringVector(dict(directions), meta, self.activation_norms)

    def _check_same_space(self, other: SteeringVector) -> None:
        a, b = self.metadata, other.metadata
        if (a.model_type, a.hidden_size, a.num_layers) != (
            b.model_type,
            b.hidden_size,
            b.num_layers,
        ):
            raise ModelMismatchError(
                f"vectors come from different models: {a.model_type} "
                f"(hidden {a.hidden_size}, {a.num_layers} layers) vs {b.model_type} "
                f"(hidden {b.hidden_size}, {b.num_layers} layers)"
            )

    def _combine(self, other: SteeringVector, sign: float, symbol: str) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        self._check_same_space(other)
        # A layer missing from one side counts as a zero direction there.
        out: dict[int, torch.Tensor] = {}
        for layer in sorted(set(self.layers) | set(other.layers)):
            zero = torch.zeros(self.metadata.hidden_size)
            a = self.directions.get(layer, zero)
            b = other.directions.get(layer, zero)
            out[layer] = a + sign * b
        return self._derived(out, f"({self.metadata.method}) {symbol} ({other.metadata.method})")

    def __add__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, -1.0, "-")

    def __mul__(self, scalar: float) -> SteeringVector:
        if isinstance(scalar, bool) or not isinstance(scalar, int | float):
            return NotImplemented
        if not is_number(scalar):
            raise VectorError(f"scalar {scalar} is not finite")
        return self._derived(
            {k: v * scalar for k, v in self.directions.items()},
            f"{scalar:g} * ({self.metadata.method})",
        )

    __rmul__ = __mul__

    def __truediv__(self, scalar: float) -> SteeringVector:
        if scalar == 0:
            raise VectorError("division of a steering vector by zero")
        return self * (1.0 / scalar)

    def __neg__(self) -> SteeringVector:
        return self._derived(
            {k: -v for k, v in self.directions.items()}, f"-({self.metadata.method})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        return (
            self.layers == other.layers
            and all(torch.equal(self.directions[k], other.directions[k]) for k in self.layers)
            and self.metadata == other.metadata
            and _norms_dict(self) == _norms_dict(other)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- compatibility -----------------------------------------------------------------
    def check_compatible(self, identity: ModelIdentity) -> None:
        """Raise unless this vector can steer a model with ``identity``.

        Raises:
            ModelMismatchError: different model type, hidden size or layer count.
        """
        meta = self.metadata
        if meta.hidden_size != identity.hidden_size:
            raise ModelMismatchError(
                f"vector has hidden size {meta.hidden_size} (made on {meta.model_id}) but the "
                f"model has {identity.hidden_size}"
            )
        if (meta.model_type, meta.num_layers) != (identity.model_type, identity.num_layers):
            raise ModelMismatchError(
                f"vector was made on a {meta.model_type} model with {meta.num_layers} layers "
                f"({meta.model_id}) but the model is {identity.model_type} with "
                f"{identity.num_layers} layers"
            )

    # -- files -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` (safetensors with metadata in the header), atomically.

        Returns:
            The path written.
        """
        target = Path(path)
        tensors = {f"direction.{layer}": v for layer, v in self.directions.items()}
        if self.activation_norms is not None:
            tensors["activation_norms"] = torch.tensor(
                [self.activation_norms.get(layer, float("nan")) for layer in self.layers],
                dtype=torch.float64,
            )
        header = {"format": FORMAT, _META_KEY: self.metadata.to_json()}
        try:
            with atomic_path(target) as tmp:
                save_file(tensors, str(tmp), metadata=header)
        except OSError as exc:
            raise VectorError(f"{target}: cannot write ({exc.strerror or exc})") from None
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SteeringVector:
        """Read a vector written by :meth:`save`; the result equals the saved one bit for bit.

        Raises:
            VectorError: missing or unreadable file, no steerlab metadata, NaN values.
        """
        source = Path(path)
        if not source.is_file():
            raise VectorError(f"{source}: no such vector file")
        try:
            from safetensors import safe_open

            with safe_open(str(source), framework="pt") as handle:
                header = handle.metadata() or {}
            tensors = load_file(str(source))
        except (SafetensorError, OSError, ValueError) as exc:
            raise VectorError(f"{source}: not a readable safetensors file ({exc})") from None
        if _META_KEY not in header:
            raise VectorError(f"{source}: not a steerlab vector (no steerlab metadata)")
        metadata = VectorMetadata.from_json(header[_META_KEY], str(source))
        directions: dict[int, torch.Tensor] = {}
        for name, tensor in tensors.items():
            if name.startswith("direction."):
                try:
                    directions[int(name.split(".", 1)[1])] = tensor
                except ValueError:
                    raise VectorError(f"{source}: bad tensor name {name!r}") from None
        layers = sorted(directions)
        norms: dict[int, float] | None = None
        if "activation_norms" in tensors:
            values = tensors["activation_norms"].tolist()
            if len(values) != len(layers):
                raise VectorError(f"{source}: activation_norms has the wrong length")
            norms = {layer: v for layer, v in zip(layers, values, strict=True) if math.isfinite(v)}
        try:
            return cls(directions, metadata, norms)
        except VectorError as exc:
            raise VectorError(f"{source}: {exc}") from None

    def to_gguf(
        self,
        path: str | os.PathLike[str],
        coefficient: float = 1.0,
        *,
        layers: Sequence[int] | None = None,
        scale: str = "vector",
        operator: str = "add",
        positions: str = "all",
    ) -> Path:
        """Write a llama.cpp control vector: ``direction.N`` = the push steerlab adds at layer
        N with ``coefficient`` and ``scale`` (``vector``, ``unit`` or ``norm``) baked in, for
        ``layers`` (default: all the vector has but 0, which llama.cpp never steers), plus
        ``steerlab.*`` metadata; atomically. Layer 0 asked for, operators but ``add`` and
        positions but ``all`` are refused (SpecError): see :mod:`steerlab.gguf_vectors` for
        the layout and the layer numbering.
        """
        wanted = [layer for layer in self.layers if layer != 0] if layers is None else layers
        chosen = gguf_vectors.exportable_layers(wanted, operator, positions)
        directions = {layer: self[layer].double().numpy() for layer in chosen}
        norms = {k: v for k, v in (self.activation_norms or {}).items() if k in directions}
        baked = gguf_vectors.bake(directions, coefficient, scale, norms)
        keys = gguf_vectors.steerlab_keys(
            json.loads(self.metadata.to_json()),
            coefficient=coefficient,
            scale=scale,
            layers=chosen,
            activation_norms=norms,
            vector_sha256=self.sha256(chosen),
        )
        hint = self.metadata.model_type
        return gguf_vectors.write_control_vector(path, baked, model_hint=hint, metadata=keys)

    @classmethod
    def from_gguf(
        cls,
        path: str | os.PathLike[str],
        model: ModelIdentity | torch.nn.Module | None = None,
        *,
        layer_offset: int = 0,
    ) -> SteeringVector:
        """Read a GGUF control vector (llama.cpp, repeng, EasySteer or ours) for ``model`` (a
        model or its identity; optional for a file steerlab wrote, whose metadata comes back).
        ``direction.N`` becomes layer ``N + layer_offset`` (-1 for llama.cpp's
        cvector-generator, which names the direction read at block i ``direction.(i+1)``).

        Raises:
            VectorError / ModelMismatchError: unreadable file, hidden size, layers (one line).
        """
        source = gguf_vectors.read_control_vector(path)
        if model is None:
            own = source.steerlab.get("metadata")
            if not isinstance(own, str):
                raise VectorError(f"{path}: not written by steerlab; give the model it is for")
            identity = VectorMetadata.from_json(own, str(path)).identity
        else:
            identity = model if isinstance(model, ModelIdentity) else model_identity(model)
        imported = gguf_vectors.import_vector(source, **vars(identity), layer_offset=layer_offset)
        metadata = VectorMetadata.from_json(json.dumps(imported.metadata), str(path))
        tensors = {k: torch.from_numpy(v) for k, v in imported.directions.items()}
        try:
            return cls(tensors, metadata, imported.activation_norms)
        except VectorError as exc:
            raise VectorError(f"{path}: {exc}") from None

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (what ``steerlab info`` prints)."""
        meta = json.loads(self.metadata.to_json())
        return {
            **meta,
            "layers": _span(self.layers),
            "norms": {str(k): round(v, 6) for k, v in self.norms().items()},
            "activation_norms": None
            if self.activation_norms is None
            else {str(k): round(v, 6) for k, v in self.activation_norms.items()},
        }


def _norms_dict(vector: SteeringVector) -> dict[int, float] | None:
    return None if vector.activation_norms is None else dict(vector.activation_norms)


def _span(layers: tuple[int, ...]) -> str:
    """Compact text for a layer list: ``0-29`` or ``3,5,7``."""
    if not layers:
        return "none"
    if list(layers) == list(range(layers[0], layers[-1] + 1)) and len(layers) > 2:
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(str(x) for x in layers)
