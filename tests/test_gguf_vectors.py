"""GGUF control vectors (steerlab.gguf_vectors, SteeringVector.to_gguf / from_gguf): llama.cpp's
exact layout read back with gguf.GGUFReader, bit-exact round trips, baking of each scale, every
refusal, repeng's writer and reader (re-implemented here from its source, not imported), and
llama.cpp's cvector-generator numbering."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch

import steerlab as sl
from conftest import make_model
from steerlab.errors import ModelMismatchError, SpecError, SteerlabError, VectorError
from steerlab.gguf_vectors import FORMAT, ModelHintWarning, read_control_vector
from steerlab.models import ModelIdentity, model_identity
from steerlab.provenance import library_version, sha256_of_file
from steerlab.vector import SteeringVector, VectorMetadata

IDENTITY = ModelIdentity("org/tiny", "llama", 16, 6)


def make_vector(
    layers: tuple[int, ...] = (1, 2, 3, 4, 5), norms: bool = True, seed: int = 0
) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    directions = {layer: torch.randn(16, generator=generator) for layer in layers}
    metadata = VectorMetadata.for_model(
        IDENTITY, "pca_diff", n_examples=8, data_sha256="ab" * 32, seed=7
    )
    activation = {layer: 10.0 + layer / 3 for layer in layers} if norms else None
    return SteeringVector(directions, metadata, activation)


def field_contents(field: Any) -> object:
    """A key's value: gguf's own ``contents()`` where the release has it (>= 0.12), else
    decoded from the raw parts as gguf 0.11 (the lowest version allowed) lays them out."""
    if hasattr(field, "contents"):
        return field.contents()
    kinds = list(field.types)
    parts = [field.parts[i] for i in field.data]
    if kinds[0] == gguf.GGUFValueType.ARRAY:
        if kinds[-1] == gguf.GGUFValueType.STRING:
            return [bytes(part).decode("utf-8") for part in parts]
        return [part.tolist()[0] for part in parts]
    if kinds[0] == gguf.GGUFValueType.STRING:
        return bytes(parts[0]).decode("utf-8")
    return parts[0].tolist()[0]


def keys(path: Path) -> dict[str, object]:
    reader = gguf.GGUFReader(path)
    return {name: field_contents(field) for name, field in reader.fields.items()}


def key_type(path: Path, name: str) -> gguf.GGUFValueType:
    return gguf.GGUFReader(path).fields[name].types[0]


def tensors(path: Path) -> dict[str, gguf.ReaderTensor]:
    return {tensor.name: tensor for tensor in gguf.GGUFReader(path).tensors}


def without_import_record(metadata: VectorMetadata) -> VectorMetadata:
    extra = dict(metadata.extra)
    extra.pop("gguf")
    return replace(metadata, extra=extra)


def assert_one_line(exc: pytest.ExceptionInfo[BaseException], *needles: str) -> None:
    message = str(exc.value)
    assert isinstance(exc.value, SteerlabError)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


# -- writing: the layout ------------------------------------------------------------------------


def test_written_file_has_llama_cpp_layout_and_steerlab_keys(tmp_path: Path) -> None:
    vector = make_vector()
    out = vector.to_gguf(tmp_path / "v.gguf")
    found = keys(out)
    assert found["general.architecture"] == "controlvector"
    assert found["controlvector.model_hint"] == "llama"
    assert found["controlvector.layer_count"] == 5  # the number of directions (repeng's too)
    assert key_type(out, "controlvector.layer_count") == gguf.GGUFValueType.INT32
    meta = vector.metadata
    expected = {
        "steerlab.format": FORMAT,
        "steerlab.model_id": "org/tiny",
        "steerlab.model_type": "llama",
        "steerlab.hidden_size": 16,
        "steerlab.num_layers": 6,
        "steerlab.method": "pca_diff",
        "steerlab.data_sha256": "ab" * 32,
        "steerlab.library_version": meta.library_version,
        "steerlab.created": meta.created,
        "steerlab.seed": 7,
        "steerlab.coefficient": 1.0,
        "steerlab.scale": "vector",
        "steerlab.layers": [1, 2, 3, 4, 5],
        "steerlab.operator": "add",
        "steerlab.positions": "all",
        "steerlab.vector_sha256": vector.sha256(),
        "steerlab.exported_by": library_version(),
        "steerlab.metadata": meta.to_json(),
    }
    for name, value in expected.items():
        assert found[name] == value, name
    if meta.git_revision is not None:
        assert found["steerlab.git_revision"] == meta.git_revision
    assert json.loads(str(found["steerlab.activation_norms"])) == {
        str(k): v for k, v in vector.activation_norms.items()
    }
    assert {name for name in found if not name.startswith(("GGUF.", "steerlab."))} == {
        "general.architecture",
        "controlvector.model_hint",
        "controlvector.layer_count",
    }
    written = tensors(out)
    assert list(written) == [f"direction.{layer}" for layer in range(1, 6)]
    for layer in range(1, 6):
        tensor = written[f"direction.{layer}"]
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
        assert [int(n) for n in tensor.shape] == [16]
        data = np.asarray(tensor.data)
        assert data.dtype == np.float32 and data.shape == (16,)
        assert np.array_equal(data.view(np.uint32), vector[layer].numpy().view(np.uint32))


def test_round_trip_is_bit_exact_and_restores_the_metadata(tmp_path: Path) -> None:
    vector = make_vector()
    out = vector.to_gguf(tmp_path / "v.gguf")
    back = SteeringVector.from_gguf(out, IDENTITY)
    assert back.layers == vector.layers
    for layer in vector.layers:
        assert back[layer].dtype == torch.float32
        assert torch.equal(back[layer], vector[layer])
    assert dict(back.activation_norms) == dict(vector.activation_norms)
    assert without_import_record(back.metadata) == vector.metadata
    assert without_import_record(back.metadata) == without_import_record(
        SteeringVector.from_gguf(out).metadata  # our own file needs no model
    )
    record = back.metadata.extra["gguf"]
    assert record["sha256"] == sha256_of_file(out)
    assert record["model_hint"] == "llama" and record["layer_offset"] == 0
    assert record["baked"] == {"coefficient": 1.0, "scale": "vector", "layers": [1, 2, 3, 4, 5]}
    saved = back.save(tmp_path / "back.safetensors")
    assert SteeringVector.load(saved) == back


def test_selected_layers_only(tmp_path: Path) -> None:
    vector = make_vector()
    out = vector.to_gguf(tmp_path / "v.gguf", layers=[4, 2, 2])
    assert list(tensors(out)) == ["direction.2", "direction.4"]
    assert keys(out)["steerlab.layers"] == [2, 4]
    assert SteeringVector.from_gguf(out, IDENTITY).layers == (2, 4)


@pytest.mark.parametrize("scale", ["vector", "unit", "norm"])
def test_each_scale_is_baked_in(tmp_path: Path, scale: str) -> None:
    vector = make_vector()
    c = -0.3
    out = vector.to_gguf(tmp_path / "v.gguf", c, layers=[2, 3], scale=scale)
    for layer in (2, 3):
        v = vector[layer].double().numpy()
        if scale != "vector":
            v = v / np.linalg.norm(v)
        factor = c * (vector.activation_norms[layer] if scale == "norm" else 1.0)
        expected = (factor * v).astype(np.float32)
        assert np.array_equal(np.asarray(tensors(out)[f"direction.{layer}"].data), expected)
    found = keys(out)
    assert found["steerlab.coefficient"] == c and found["steerlab.scale"] == scale
    back = SteeringVector.from_gguf(out, IDENTITY)
    method = {
        "vector": "-0.3 * (pca_diff)",
        "unit": "-0.3 * normalize(pca_diff)",
        "norm": "-0.3 * norm * normalize(pca_diff)",
    }[scale]
    assert back.metadata.method == method


def test_baked_vector_steers_like_the_original(tmp_path: Path) -> None:
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    identity = model_identity(model)
    generator = torch.Generator().manual_seed(1)
    vector = SteeringVector(
        {layer: torch.randn(32, generator=generator) for layer in (1, 2)},
        VectorMetadata.for_model(identity, "mean_diff"),
        {1: 4.0, 2: 5.0},
    )
    batch = tokenizer(["hello there", "a b c"], return_tensors="pt", padding=True)
    for scale in ("vector", "unit", "norm"):
        out = vector.to_gguf(tmp_path / f"{scale}.gguf", 0.7, scale=scale)
        imported = SteeringVector.from_gguf(out, model)
        with torch.no_grad():
            with sl.steer(model, vector, 0.7, scale=scale):
                expected = model(**batch).logits
            with sl.steer(model, imported, 1.0, scale="vector"):
                found = model(**batch).logits
        torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-5)


# -- writing: refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,needles",
    [
        ({"layers": [0, 1]}, SpecError, ("layer 0", "direction.0")),
        ({"operator": "ablate"}, SpecError, ("operator 'ablate'", "add")),
        ({"operator": "clamp"}, SpecError, ("operator 'clamp'",)),
        ({"positions": "prompt"}, SpecError, ("positions 'prompt'", "every position")),
        ({"positions": "generated"}, SpecError, ("positions 'generated'",)),
        ({"coefficient": float("nan")}, SpecError, ("coefficient", "finite")),
        ({"coefficient": float("inf")}, SpecError, ("coefficient", "finite")),
        ({"scale": "bogus"}, SpecError, ("scale 'bogus'",)),
        ({"layers": [9]}, VectorError, ("no layer 9",)),
        ({"layers": "1-2"}, SpecError, ("layers must be a list",)),
    ],
)
def test_refusals_are_one_line_and_leave_no_file(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], needles: tuple[str, ...]
) -> None:
    vector = make_vector(layers=(0, 1, 2))
    target = tmp_path / "v.gguf"
    coefficient = kwargs.pop("coefficient", 1.0)
    kwargs.setdefault("layers", [1, 2])
    with pytest.raises(error) as caught:
        vector.to_gguf(target, coefficient, **kwargs)  # type: ignore[arg-type]
    assert_one_line(caught, *needles)
    assert list(tmp_path.iterdir()) == []


def test_default_layers_leave_out_layer_0(tmp_path: Path) -> None:
    out = make_vector(layers=(0, 1, 2, 3)).to_gguf(tmp_path / "v.gguf")
    names = sorted(t.name for t in gguf.GGUFReader(out).tensors)
    assert names == ["direction.1", "direction.2", "direction.3"]


def test_norm_scale_without_norms_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VectorError) as caught:
        make_vector(norms=False).to_gguf(tmp_path / "v.gguf", 0.2, scale="norm")
    assert_one_line(caught, "activation norm", "--scale unit or --scale vector")
    assert list(tmp_path.iterdir()) == []


def test_zero_direction_cannot_be_made_unit(tmp_path: Path) -> None:
    vector = make_vector()
    zero = SteeringVector({1: torch.zeros(16)}, vector.metadata)
    with pytest.raises(VectorError) as caught:
        zero.to_gguf(tmp_path / "v.gguf", scale="unit")
    assert_one_line(caught, "layer 1", "zero")
    zero.to_gguf(tmp_path / "v.gguf")  # as a vector it is fine (it adds nothing)


def test_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "v.gguf"
    target.write_bytes(b"old")

    def broken(self: gguf.GGUFWriter, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", broken)
    with pytest.raises(VectorError) as caught:
        make_vector().to_gguf(target)
    assert_one_line(caught, "v.gguf", "No space left")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["v.gguf"]


# -- repeng: its writer and reader, re-implemented from repeng/extract.py ---------------------


def repeng_export_gguf(path: Path, model_type: str, directions: dict[int, np.ndarray]) -> None:
    """What repeng's ``ControlVector.export_gguf`` does (vgel/repeng, repeng/extract.py)."""
    arch = "controlvector"
    writer = gguf.GGUFWriter(path, arch)
    writer.add_string(f"{arch}.model_hint", model_type)
    writer.add_uint32(f"{arch}.layer_count", len(directions))
    for layer in directions:
        writer.add_tensor(f"direction.{layer}", directions[layer])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def repeng_import_gguf(path: Path) -> tuple[str, dict[int, np.ndarray]]:
    """What repeng's ``ControlVector.import_gguf`` reads: the hint and every direction."""
    reader = gguf.GGUFReader(path)
    arch = reader.get_field("general.architecture")
    assert arch is not None and str(bytes(arch.parts[-1]), encoding="utf-8") == "controlvector"
    hint = reader.get_field("controlvector.model_hint")
    assert hint is not None and len(hint.parts)
    model_hint = str(bytes(hint.parts[-1]), encoding="utf-8")
    directions = {}
    for tensor in reader.tensors:
        if tensor.name.startswith("direction."):
            directions[int(tensor.name.split(".")[1])] = np.array(tensor.data)
    return model_hint, directions


def test_a_repeng_file_reads_into_an_equal_vector(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # repeng's default layers: range(-1, -num_hidden_layers, -1), made positive: 5, 4, ... 1.
    directions = {layer: rng.standard_normal(16).astype(np.float32) for layer in range(5, 0, -1)}
    path = tmp_path / "repeng.gguf"
    repeng_export_gguf(path, "llama", directions)
    vector = SteeringVector.from_gguf(path, IDENTITY)
    assert vector.layers == (1, 2, 3, 4, 5)
    for layer, array in directions.items():
        assert np.array_equal(vector[layer].numpy().view(np.uint32), array.view(np.uint32))
    meta = vector.metadata
    assert (meta.method, meta.model_type, meta.hidden_size, meta.num_layers) == (
        "gguf",
        "llama",
        16,
        6,
    )
    record = meta.extra["gguf"]
    assert record["model_hint"] == "llama" and record["layer_count"] == 5
    assert record["sha256"] == sha256_of_file(path)
    assert vector.activation_norms is None


def test_repeng_reads_our_file_as_we_wrote_it(tmp_path: Path) -> None:
    vector = make_vector()
    out = vector.to_gguf(tmp_path / "v.gguf", 0.5, layers=[1, 3], scale="unit")
    hint, directions = repeng_import_gguf(out)
    assert hint == "llama" and sorted(directions) == [1, 3]
    ours = SteeringVector.from_gguf(out, IDENTITY)
    for layer in (1, 3):
        assert np.array_equal(directions[layer], ours[layer].numpy())


def test_repeng_direction_0_is_read_although_llama_cpp_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "repeng.gguf"
    repeng_export_gguf(path, "llama", {0: np.ones(16, dtype=np.float32)})
    assert SteeringVector.from_gguf(path, IDENTITY).layers == (0,)


# -- llama.cpp's cvector-generator: direction.(i+1) was read at block i -----------------------


def write_cvector_generator_file(path: Path, n_layers: int, hint: str = "llama") -> None:
    """The layout of tools/cvector-generator's ``export_gguf``: layer_count int32 =
    n_layers - 1, tensors direction.1 .. direction.(n_layers - 1), the one read at block i
    named direction.(i + 1); here direction.(i + 1) is filled with the value i."""
    writer = gguf.GGUFWriter(path, "controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_int32("controlvector.layer_count", n_layers - 1)
    for read_at in range(n_layers - 1):
        writer.add_tensor(f"direction.{read_at + 1}", np.full(16, read_at, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_cvector_generator_numbering_with_layer_offset(tmp_path: Path) -> None:
    path = tmp_path / "cvector.gguf"
    write_cvector_generator_file(path, n_layers=6)
    as_applied = SteeringVector.from_gguf(path, IDENTITY)  # where llama.cpp adds them
    assert as_applied.layers == (1, 2, 3, 4, 5)
    as_read = SteeringVector.from_gguf(path, IDENTITY, layer_offset=-1)
    assert as_read.layers == (0, 1, 2, 3, 4)
    for layer in as_read.layers:
        assert torch.equal(as_read[layer], torch.full((16,), float(layer)))
    assert as_read.metadata.extra["gguf"]["layer_offset"] == -1
    with pytest.raises(ModelMismatchError) as caught:
        SteeringVector.from_gguf(path, IDENTITY, layer_offset=1)
    assert_one_line(caught, "direction.5", "layer offset 1", "layer 6", "6-layer model")
    with pytest.raises(SpecError):
        SteeringVector.from_gguf(path, IDENTITY, layer_offset=1.5)  # type: ignore[arg-type]


def test_other_model_hint_warns_but_reads(tmp_path: Path) -> None:
    path = tmp_path / "cvector.gguf"
    write_cvector_generator_file(path, n_layers=6, hint="llama")
    mistral = replace(IDENTITY, model_type="mistral")  # llama.cpp calls Mistral "llama"
    with pytest.warns(ModelHintWarning, match="'llama' but the model is 'mistral'"):
        vector = SteeringVector.from_gguf(path, mistral)
    assert vector.metadata.model_type == "mistral"


def test_no_model_hint_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bare.gguf"
    writer = gguf.GGUFWriter(path, "controlvector")
    writer.add_tensor("direction.3", np.ones(16, dtype=np.float32))
    writer.add_tensor("direction.1", np.ones(16, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vector = SteeringVector.from_gguf(path, IDENTITY)
    assert vector.layers == (1, 3) and vector[1].dtype == torch.float16
    assert vector.metadata.extra["gguf"]["model_hint"] is None


# -- reading: refusals --------------------------------------------------------------------------


def write_raw(path: Path, arch: str, named: dict[str, np.ndarray]) -> Path:
    writer = gguf.GGUFWriter(path, arch)
    for name, array in named.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_reading_refusals_are_one_line(tmp_path: Path) -> None:
    ones = np.ones(16, dtype=np.float32)
    cases: list[tuple[Path, tuple[str, ...]]] = [
        (tmp_path / "missing.gguf", ("no such GGUF file",)),
        (tmp_path / "junk.gguf", ("not a readable GGUF file",)),
        (write_raw(tmp_path / "model.gguf", "llama", {"direction.1": ones}), ("'llama'",)),
        (
            write_raw(tmp_path / "other.gguf", "controlvector", {"token_embd.weight": ones}),
            ("'token_embd.weight'", "direction.N"),
        ),
        (
            write_raw(tmp_path / "neg.gguf", "controlvector", {"direction.-1": ones}),
            ("'direction.-1'",),
        ),
        (
            write_raw(tmp_path / "2d.gguf", "controlvector", {"direction.1": np.ones((2, 16))}),
            ("direction.1", "1-D"),
        ),
        (
            write_raw(
                tmp_path / "ragged.gguf",
                "controlvector",
                {"direction.1": ones, "direction.2": np.ones(8, dtype=np.float32)},
            ),
            ("different lengths",),
        ),
        (write_raw(tmp_path / "empty.gguf", "controlvector", {}), ("no direction.N tensor",)),
    ]
    (tmp_path / "junk.gguf").write_bytes(b"definitely not gguf" * 10)
    for path, needles in cases:
        with pytest.raises(VectorError) as caught:
            SteeringVector.from_gguf(path, IDENTITY)
        assert_one_line(caught, *needles)
        if path.exists():
            assert str(path) in str(caught.value)


def test_missing_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no-arch.gguf"
    writer = gguf.GGUFWriter(path, "controlvector")
    writer.kv_data[0].pop("general.architecture")  # GGUFWriter always adds it otherwise
    writer.add_tensor("direction.1", np.ones(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(VectorError) as caught:
        read_control_vector(path)
    assert_one_line(caught, "no general.architecture key")


def test_quantized_direction_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.gguf"
    writer = gguf.GGUFWriter(path, "controlvector")
    raw = np.zeros(34, dtype=np.uint8)  # one Q8_0 block: 32 values
    writer.add_tensor("direction.1", raw, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(VectorError) as caught:
        read_control_vector(path)
    assert_one_line(caught, "direction.1", "Q8_0", "F32")


def test_non_finite_direction_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = np.ones(16, dtype=np.float32)
    bad[3] = np.nan
    path = write_raw(tmp_path / "nan.gguf", "controlvector", {"direction.2": bad})
    with pytest.raises(VectorError) as caught:
        SteeringVector.from_gguf(path, IDENTITY)
    assert_one_line(caught, "nan.gguf", "layer 2", "NaN")


def test_identity_is_checked(tmp_path: Path) -> None:
    path = make_vector().to_gguf(tmp_path / "v.gguf")
    with pytest.raises(ModelMismatchError) as caught:
        SteeringVector.from_gguf(path, replace(IDENTITY, hidden_size=32))
    assert_one_line(caught, "length 16", "hidden size is 32")
    with pytest.raises(ModelMismatchError) as caught:
        SteeringVector.from_gguf(path, replace(IDENTITY, num_layers=5))
    assert_one_line(caught, "direction.5", "5-layer model")
    with pytest.raises(ModelMismatchError) as caught:  # our own file: as strict as .safetensors
        SteeringVector.from_gguf(path, replace(IDENTITY, model_type="qwen2"))
    assert_one_line(caught, "made on a llama model", "the model is qwen2")
    foreign = write_raw(tmp_path / "f.gguf", "controlvector", {"direction.1": np.ones(16)})
    with pytest.raises(VectorError) as caught:
        SteeringVector.from_gguf(foreign)
    assert_one_line(caught, "not written by steerlab", "give the model")


# -- the embedded model ------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_model_export_import_steers_the_same(tmp_path: Path) -> None:
    model, tokenizer = sl.load_model("default")
    pairs = sl.builtin_pairs("happy_sad", limit=16)
    vector = sl.extract(model, tokenizer, pairs, method="pca_diff", progress=False)
    out = vector.to_gguf(tmp_path / "happy.gguf", 0.15, layers=range(12, 19), scale="norm")
    assert list(tensors(out)) == [f"direction.{layer}" for layer in range(12, 19)]
    imported = SteeringVector.from_gguf(out, model)
    assert imported.layers == tuple(range(12, 19))
    batch = tokenizer(["I think today", "The weather is"], return_tensors="pt", padding=True)
    with torch.no_grad():
        with sl.steer(model, vector, 0.15, layers="12-18", scale="norm"):
            expected = model(**batch).logits
        with sl.steer(model, imported, 1.0, scale="vector"):
            found = model(**batch).logits
        plain = model(**batch).logits
    assert not torch.allclose(plain, expected, atol=1e-3)  # the steering does something
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-4)
