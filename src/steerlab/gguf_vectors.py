"""GGUF control vectors (llama.cpp's layout, also read by repeng and EasySteer): per-layer
float32 directions and metadata to and from a ``.gguf`` file.

The layout, as llama.cpp reads and writes it (verified in its source, ggml-org/llama.cpp):

* ``common/common.cpp`` ``common_control_vector_load_one``: every tensor must be named
  ``direction.N`` with an integer ``N >= 1`` (``direction.0`` and any other name make it
  skip the whole file), of type F32, 1-D, all of one length (``n_embd``); it stores
  ``direction.N`` at offset ``n_embd * (N - 1)`` of a flat buffer ("layer 1 at [0]") and
  reads no key at all: neither ``general.architecture`` nor ``controlvector.*``.
* ``src/llama-adapter.cpp`` ``llama_adapter_cvec::apply`` fills ``tensors[il]`` for
  ``il >= 1`` from offset ``n_embd * (il - 1)`` ("buffer doesn't have data for layer 0") and
  ``llama_adapter_cvec::init`` pushes no tensor for layer 0, so ``direction.N`` lands in
  ``tensors[N]``; ``tensor_for(il)`` / ``apply_to(ctx, cur, il)`` add ``tensors[il]`` to
  ``cur``, within ``--control-vector-layer-range``.
* ``src/models/*.cpp`` (e.g. ``llama.cpp``): each decoder block ``il`` (0-based) ends with
  ``cur = ggml_add(ctx0, cur, ffn_inp)`` (the feed-forward residual add), then
  ``cur = build_cvec(cur, il)`` (``llm_graph_context::build_cvec`` in
  ``src/llama-graph.cpp`` calls ``cvec->apply_to``), then ``cb(cur, "l_out", il)``: the
  block's output, for every token position.

So llama.cpp adds ``direction.N`` to the output of decoder block ``N`` (0-based) at every
position, and never steers block 0. steerlab's layer ``i`` is the output of block ``i``
(the hook on ``model.layers[i]``), so ``direction.N`` is steerlab layer ``N``. repeng
(vgel/repeng) numbers layers the same way: ``repeng/control.py`` ``ControlModel`` wraps
``model_layer_list(model)[layer_id]`` in a ``ControlModule`` that adds to the block's
output, and ``repeng/extract.py`` reads layer ``i`` from ``hidden_states[i + 1]`` (the
output of block ``i``). Its ``ControlVector.export_gguf`` writes
``gguf.GGUFWriter(path, "controlvector")`` (hence ``general.architecture``),
``controlvector.model_hint`` = ``config.model_type``, ``controlvector.layer_count`` =
``len(directions)`` (uint32) and one tensor ``direction.{layer}`` per layer; its
``import_gguf`` needs ``controlvector.model_hint`` and reads every ``direction.*`` tensor.
EasySteer (ZJU-REAL/EasySteer-vllm-v1) reads ``direction.<layer>`` tensors and nothing else
(``vllm/steer_vectors/algorithms/loading.py`` ``read_gguf_directions``) into the layer of that
number, steered by a forward hook on that decoder layer's output
(``vllm/steer_vectors/layers.py`` ``DecoderLayerWithSteerVector.process_output_hook``).

llama.cpp's own generator (``tools/cvector-generator``: ``cvector-generator.cpp``
``export_gguf`` writes the same keys, ``layer_count`` as int32 = number of directions and
``model_hint`` = the model file's ``general.architecture``; ``pca.hpp`` ``run_pca`` and
``mean.hpp`` ``run``) names the direction read at the output of block ``i``
``direction.(i + 1)``: llama.cpp then applies it one block later than it was read. Read such
a file with ``layer_offset=-1`` to place each direction where it was read; ``0`` (the
default) keeps llama.cpp's own behaviour (each direction where llama.cpp adds it).

What this module writes: the keys above (``layer_count`` as int32, like llama.cpp's writer,
= the number of directions, which is also repeng's value), F32 1-D ``direction.N`` tensors
in ascending ``N``, the coefficient and scale baked into the numbers (computed in float64,
rounded once to float32), and steerlab's own metadata under ``steerlab.`` keys. It works on
numpy arrays and plain dicts; :meth:`steerlab.vector.SteeringVector.to_gguf` and
:meth:`~steerlab.vector.SteeringVector.from_gguf` are the typed entry points.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from steerlab.errors import ModelMismatchError, SpecError, SteerlabWarning, VectorError
from steerlab.provenance import atomic_path, library_version, sha256_of_file, utc_now
from steerlab.validation import check_layer_indices, check_number

ARCHITECTURE = "controlvector"
MODEL_HINT_KEY = f"{ARCHITECTURE}.model_hint"
LAYER_COUNT_KEY = f"{ARCHITECTURE}.layer_count"
PREFIX = "steerlab."
FORMAT = "steerlab.gguf/1"
TENSOR_PREFIX = "direction."
SCALES = ("vector", "unit", "norm")
# The (deprecated) raw vector times the activation norm: what --scale-by-norm alone means.
_LEGACY_SCALE = "vector_norm"
# The fields of the vector's metadata also written as keys of their own (readable by any
# GGUF tool); the whole metadata is in steerlab.metadata as JSON.
_IDENTITY_KEYS = (
    "model_id",
    "model_type",
    "hidden_size",
    "num_layers",
    "method",
    "data_sha256",
    "library_version",
    "git_revision",
    "created",
    "seed",
)
# Tensor types a direction may have when read (llama.cpp itself takes F32 only).
_FLOAT_TYPES = {
    gguf.GGMLQuantizationType.F32: np.float32,
    gguf.GGMLQuantizationType.F16: np.float16,
    gguf.GGMLQuantizationType.F64: np.float64,
}


class ModelHintWarning(SteerlabWarning):
    """A control vector whose ``controlvector.model_hint`` names another model type."""


@dataclass(frozen=True)
class ControlVectorFile:
    """What a GGUF control-vector file holds.

    Attributes:
        path: the file.
        directions: ``{N: array of shape (n_embd,)}`` for each ``direction.N`` tensor.
        model_hint: ``controlvector.model_hint``, or None when absent.
        layer_count: ``controlvector.layer_count``, or None when absent.
        steerlab: the ``steerlab.*`` keys (without the prefix), decoded.
        sha256: sha256 of the file's bytes.
    """

    path: Path
    directions: dict[int, np.ndarray]
    model_hint: str | None
    layer_count: int | None
    steerlab: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""


@dataclass(frozen=True)
class ImportedVector:
    """A control vector made ready for a model: steerlab layers, metadata fields, norms.

    Attributes:
        directions: ``{steerlab layer: array of shape (hidden_size,)}``.
        metadata: the fields of a ``VectorMetadata`` (JSON-able).
        activation_norms: ``{layer: norm}`` where the file recorded them (ours only).
    """

    directions: dict[int, np.ndarray]
    metadata: dict[str, Any]
    activation_norms: dict[int, float] | None


# -- writing ---------------------------------------------------------------------------------


def bake(
    directions: Mapping[int, np.ndarray],
    coefficient: float,
    scale: str,
    activation_norms: Mapping[int, float] | None,
) -> dict[int, np.ndarray]:
    """The push steerlab adds at each layer, as float32: what llama.cpp must add there.

    ``vector``: ``c·v``; ``unit``: ``c·v/‖v‖``; ``norm``: ``c·‖h‖·v/‖v‖`` with ``‖h‖`` the
    layer's recorded activation norm. Computed in float64 and rounded once.

    Raises:
        SpecError: an unknown scale or a non-finite coefficient.
        VectorError: a zero direction to make unit, or ``norm`` without a layer's norm.
    """
    c = check_number(coefficient, "coefficient")
    if scale not in (*SCALES, _LEGACY_SCALE):
        raise SpecError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    norms = activation_norms or {}
    out: dict[int, np.ndarray] = {}
    for layer, raw in sorted(directions.items()):
        v = np.asarray(raw, dtype=np.float64)
        factor = c
        if scale in ("norm", _LEGACY_SCALE):
            if layer not in norms:
                raise VectorError(
                    f"--scale norm needs the activation norm of layer {layer}, which the "
                    "vector does not record: use --scale unit or --scale vector"
                )
            factor *= float(norms[layer])
        if scale in ("unit", "norm"):
            length = float(np.linalg.norm(v))
            if length == 0.0:
                raise VectorError(f"layer {layer}: the direction is zero; it has no unit vector")
            v = v / length
        baked = (factor * v).astype(np.float32)
        if not np.isfinite(baked).all():
            raise VectorError(f"layer {layer}: the baked direction overflows float32")
        out[layer] = baked
    return out


def exportable_layers(layers: Iterable[int], operator: str, positions: str) -> tuple[int, ...]:
    """``layers`` sorted and unique, if a GGUF control vector can express steering there
    with ``operator`` at ``positions``; else one line saying why not.

    Raises:
        SpecError: not layer indices, layer 0, an operator other than ``add``, positions
            other than ``all``.
    """
    chosen = tuple(sorted(set(check_layer_indices(layers, "layers", allow_duplicates=True))))
    if operator != "add":
        raise SpecError(
            f"operator {operator!r} cannot be exported: a GGUF control vector only adds a fixed "
            "vector (operator add)"
        )
    if positions != "all":
        raise SpecError(
            f"positions {positions!r} cannot be exported: llama.cpp adds a control vector at "
            "every position (positions all)"
        )
    if 0 in chosen:
        last = max(chosen)
        example = f" (e.g. --layers 1-{last})" if last > 1 else ""
        raise SpecError(
            "layer 0 cannot be exported: llama.cpp never steers the output of block 0 (it "
            f"refuses direction.0); export layers 1 and up{example}"
        )
    return chosen


def write_control_vector(
    path: str | os.PathLike[str],
    directions: Mapping[int, np.ndarray],
    *,
    model_hint: str,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``directions`` (``{N: float32 array (n_embd,)}``) as ``direction.N`` tensors.

    Args:
        path: the ``.gguf`` file; written to a temporary file renamed into place.
        directions: the numbers llama.cpp adds at each layer (N >= 1), all one length.
        model_hint: ``controlvector.model_hint`` (the model type).
        metadata: ``{key: value}`` written as ``steerlab.KEY``: str, bool, int, float or a
            list of ints; None values are left out.

    Raises:
        VectorError: an empty, non-1-D, non-finite or ragged direction, layer 0, or a file
            that cannot be written.
    """
    target = Path(path)
    if not directions:
        raise VectorError(f"{target}: no direction to write")
    arrays: dict[int, np.ndarray] = {}
    for layer, raw in sorted(directions.items()):
        array = np.ascontiguousarray(raw, dtype=np.float32)
        if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or layer < 1:
            raise VectorError(f"{target}: direction.{layer}: llama.cpp needs a layer index >= 1")
        if array.ndim != 1 or array.size == 0:
            raise VectorError(f"{target}: direction.{layer} must be a non-empty 1-D array")
        if not np.isfinite(array).all():
            raise VectorError(f"{target}: direction.{layer} contains NaN or inf")
        arrays[int(layer)] = array
    widths = {array.size for array in arrays.values()}
    if len(widths) != 1:
        raise VectorError(f"{target}: directions have different lengths {sorted(widths)}")
    try:
        with atomic_path(target) as tmp:
            writer = gguf.GGUFWriter(str(tmp), ARCHITECTURE)
            writer.add_string(MODEL_HINT_KEY, model_hint)
            writer.add_int32(LAYER_COUNT_KEY, len(arrays))
            for key, value in (metadata or {}).items():
                _add_value(writer, PREFIX + key, value)
            for layer, array in arrays.items():
                writer.add_tensor(f"{TENSOR_PREFIX}{layer}", array)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
    except OSError as exc:
        raise VectorError(f"{target}: cannot write ({exc.strerror or exc})") from None
    return target


def _add_value(writer: gguf.GGUFWriter, key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int | np.integer):
        writer.add_int64(key, int(value))
    elif isinstance(value, float | np.floating):
        writer.add_float64(key, float(value))
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        writer.add_array(key, [int(v) for v in value])
    else:
        raise TypeError(f"{key}: cannot store {type(value).__name__} in a GGUF key")


def steerlab_keys(
    metadata: Mapping[str, Any],
    *,
    coefficient: float,
    scale: str,
    layers: Sequence[int],
    activation_norms: Mapping[int, float] | None,
    vector_sha256: str,
) -> dict[str, Any]:
    """The ``steerlab.*`` keys (without the prefix) of an exported vector.

    Args:
        metadata: the vector's metadata fields (``VectorMetadata`` as a dict).
        coefficient: the coefficient baked in.
        scale: what the coefficient was measured in (baked in too).
        layers: the exported layers.
        activation_norms: the vector's norms at those layers, if recorded.
        vector_sha256: sha256 of the vector's directions at those layers (before baking).
    """
    keys: dict[str, Any] = {"format": FORMAT}
    keys.update({name: metadata.get(name) for name in _IDENTITY_KEYS})
    keys.update(
        coefficient=float(coefficient),
        scale=scale,
        layers=[int(layer) for layer in layers],
        operator="add",
        positions="all",
        vector_sha256=vector_sha256,
        exported_by=library_version(),
        exported_at=utc_now(),
        metadata=json.dumps(dict(metadata), sort_keys=True),
    )
    if activation_norms:
        norms = {str(k): float(v) for k, v in activation_norms.items() if k in layers}
        keys["activation_norms"] = json.dumps(norms, sort_keys=True)
    return keys


# -- reading ---------------------------------------------------------------------------------


def read_control_vector(path: str | os.PathLike[str]) -> ControlVectorFile:
    """Read any GGUF control vector (llama.cpp, repeng, EasySteer, steerlab).

    Requires ``general.architecture = "controlvector"`` and only ``direction.N`` tensors
    (N >= 0; llama.cpp refuses N = 0, repeng does not), 1-D, F32 (F16/F64 read too), all one
    length. ``controlvector.model_hint`` and ``layer_count`` are optional.

    Raises:
        VectorError: one line naming the file and the key or tensor at fault.
    """
    source = Path(path)
    if not source.is_file():
        raise VectorError(f"{source}: no such GGUF file")
    try:
        reader = gguf.GGUFReader(str(source), "r")
    except Exception as exc:  # gguf raises ValueError, struct.error, IndexError... on bad bytes
        detail = " ".join(str(exc).split())[:200]
        raise VectorError(
            f"{source}: not a readable GGUF file ({type(exc).__name__}: {detail})"
        ) from None
    values = {name: _field_value(item) for name, item in reader.fields.items()}
    arch = values.get("general.architecture")
    if arch is None:
        raise VectorError(f"{source}: no general.architecture key; not a GGUF control vector")
    if arch != ARCHITECTURE:
        raise VectorError(
            f"{source}: general.architecture is {arch!r}, not {ARCHITECTURE!r}: a model file, "
            "not a control vector"
        )
    directions: dict[int, np.ndarray] = {}
    for tensor in reader.tensors:
        layer, array = _direction(source, tensor)
        if layer in directions:
            raise VectorError(f"{source}: two tensors for layer {layer} ({tensor.name})")
        directions[layer] = array
    if not directions:
        raise VectorError(f"{source}: no direction.N tensor")
    widths = {array.size for array in directions.values()}
    if len(widths) != 1:
        raise VectorError(f"{source}: direction tensors have different lengths {sorted(widths)}")
    del reader  # closes the memory map; the arrays above are copies
    hint = values.get(MODEL_HINT_KEY)
    count = values.get(LAYER_COUNT_KEY)
    return ControlVectorFile(
        path=source,
        directions=dict(sorted(directions.items())),
        model_hint=hint if isinstance(hint, str) else None,
        layer_count=int(count) if isinstance(count, int) and not isinstance(count, bool) else None,
        steerlab={k[len(PREFIX) :]: v for k, v in values.items() if k.startswith(PREFIX)},
        sha256=sha256_of_file(source),
    )


def _direction(source: Path, tensor: Any) -> tuple[int, np.ndarray]:
    name = str(tensor.name)
    stem, dot, index = name.partition(".")
    if stem != "direction" or not dot or not index.isdigit():
        raise VectorError(
            f"{source}: tensor {name!r} is not named direction.N (llama.cpp refuses such files)"
        )
    dtype = _FLOAT_TYPES.get(tensor.tensor_type)
    if dtype is None:
        kind = getattr(tensor.tensor_type, "name", tensor.tensor_type)
        raise VectorError(f"{source}: tensor {name} has type {kind}; expected F32")
    shape = [int(n) for n in tensor.shape]
    # ggml counts trailing dimensions of 1 out (ggml_n_dims), so (n, 1) is 1-D there too.
    if len(shape) == 0 or any(n != 1 for n in shape[1:]) or shape[0] == 0:
        raise VectorError(f"{source}: tensor {name} has shape {shape}; expected 1-D")
    array = np.array(tensor.data, dtype=dtype, copy=True).reshape(shape[0])
    return int(index), array


def _field_value(item: Any) -> Any:
    """A GGUF key's value as Python (works with the ReaderField of every gguf release)."""
    types = list(item.types)
    if not types or not item.data:
        return None if not types or types[0] != gguf.GGUFValueType.ARRAY else []
    if types[0] == gguf.GGUFValueType.ARRAY:
        if types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(item.parts[i]).decode("utf-8", "replace") for i in item.data]
        return [item.parts[i].tolist()[0] for i in item.data]
    part = item.parts[item.data[0]]
    if types[0] == gguf.GGUFValueType.STRING:
        return bytes(part).decode("utf-8", "replace")
    return part.tolist()[0]


# -- a file made ready for a model -------------------------------------------------------------


def import_vector(
    file: ControlVectorFile,
    *,
    model_id: str,
    model_type: str,
    hidden_size: int,
    num_layers: int,
    layer_offset: int = 0,
) -> ImportedVector:
    """Map a control vector's ``direction.N`` to steerlab layers ``N + layer_offset`` of the
    model with this identity, and say where it came from.

    A file steerlab wrote gets its vector's metadata back (method, data hash, seed,
    activation norms...), its identity checked as strictly as a ``.safetensors`` vector's;
    anything else becomes method ``gguf``, and a ``controlvector.model_hint`` other than the
    model's type only warns (:class:`ModelHintWarning`): llama.cpp never reads the hint, and
    its generator writes llama.cpp's architecture name (``llama`` for a Mistral model),
    repeng the Hugging Face ``model_type``, so a hint that differs does not mean the vector
    does not fit; the hidden size and layer count are what must fit, and they are checked.

    Raises:
        ModelMismatchError: a tensor length other than the hidden size, a layer the model
            does not have, or (for our own files) another model type or layer count.
        SpecError: a ``layer_offset`` that is not an integer.
    """
    where = file.path
    if isinstance(layer_offset, bool) or not isinstance(layer_offset, int):
        raise SpecError(f"layer offset must be an integer, got {layer_offset!r}")
    width = next(iter(file.directions.values())).size
    if width != hidden_size:
        raise ModelMismatchError(
            f"{where}: directions have length {width} but the model's hidden size is {hidden_size}"
        )
    directions: dict[int, np.ndarray] = {}
    for index, array in file.directions.items():
        layer = index + layer_offset
        if not 0 <= layer < num_layers:
            shift = f" with layer offset {layer_offset}" if layer_offset else ""
            raise ModelMismatchError(
                f"{where}: tensor direction.{index}{shift} is layer {layer}, which a "
                f"{num_layers}-layer model does not have (0-{num_layers - 1})"
            )
        directions[layer] = array
    own = _own_metadata(file)
    record: dict[str, Any] = {
        "file": file.path.name,
        "sha256": file.sha256,
        "model_hint": file.model_hint,
        "layer_count": file.layer_count,
        "layer_offset": layer_offset,
    }
    if own is not None:
        _check_own_identity(where, own, model_type, hidden_size, num_layers)
        baked = {k: file.steerlab.get(k) for k in ("coefficient", "scale", "layers")}
        record.update(baked=baked)
        metadata = {**own, "method": _baked_method(own["method"], baked)}
        metadata["extra"] = {**dict(own.get("extra") or {}), "gguf": record}
        return ImportedVector(directions, metadata, _own_norms(file, layer_offset, directions))
    if file.model_hint is not None and file.model_hint != model_type:
        warnings.warn(
            f"{where}: controlvector.model_hint is {file.model_hint!r} but the model is "
            f"{model_type!r}; the hidden size and layer count fit, so it is read anyway",
            ModelHintWarning,
            stacklevel=3,
        )
    metadata = {
        "model_id": model_id,
        "model_type": model_type,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "method": "gguf",
        "position": "unknown",
        "extra": {"gguf": record},
    }
    return ImportedVector(directions, metadata, None)


def _own_metadata(file: ControlVectorFile) -> dict[str, Any] | None:
    """The vector metadata a steerlab-written file carries, or None for a foreign file."""
    text = file.steerlab.get("metadata")
    if file.steerlab.get("format") != FORMAT or not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VectorError(
            f"{file.path}: key steerlab.metadata is not valid JSON ({exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise VectorError(f"{file.path}: key steerlab.metadata is not a JSON object")
    return data


def _check_own_identity(
    where: Path, own: Mapping[str, Any], model_type: str, hidden_size: int, num_layers: int
) -> None:
    made = (own.get("model_type"), own.get("hidden_size"), own.get("num_layers"))
    if made != (model_type, hidden_size, num_layers):
        raise ModelMismatchError(
            f"{where}: the vector was made on a {made[0]} model (hidden {made[1]}, {made[2]} "
            f"layers, {own.get('model_id')}) but the model is {model_type} (hidden "
            f"{hidden_size}, {num_layers} layers)"
        )


def _baked_method(method: str, baked: Mapping[str, Any]) -> str:
    """The method of a vector with ``baked`` coefficient and scale, in vector-arithmetic
    notation (``0.2 * norm * normalize(pca_diff)``); unchanged when nothing was baked."""
    coefficient, scale = baked.get("coefficient"), baked.get("scale")
    if not isinstance(coefficient, float) or not isinstance(scale, str):
        return method
    if scale == "vector":
        return method if coefficient == 1.0 else f"{coefficient:g} * ({method})"
    if scale == "unit":
        return f"{coefficient:g} * normalize({method})"
    if scale == "norm":
        return f"{coefficient:g} * norm * normalize({method})"
    return f"{coefficient:g} * norm * ({method})"


def _own_norms(
    file: ControlVectorFile, layer_offset: int, directions: Mapping[int, np.ndarray]
) -> dict[int, float] | None:
    text = file.steerlab.get("activation_norms")
    if not isinstance(text, str):
        return None
    try:
        raw = json.loads(text)
        norms = {int(k) + layer_offset: float(v) for k, v in raw.items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise VectorError(f"{file.path}: key steerlab.activation_norms is malformed") from None
    return {k: v for k, v in norms.items() if k in directions and math.isfinite(v)} or None
