"""Tests for steerlab.vector: construction, validation, arithmetic, save/load, compatibility."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import steerlab.vector as vector_module
from steerlab.errors import ModelMismatchError, SteerlabError, VectorError
from steerlab.models import ModelIdentity
from steerlab.vector import SteeringVector, VectorMetadata

HIDDEN = 8
LAYERS = 4


def meta(**changes: object) -> VectorMetadata:
    facts: dict[str, object] = {
        "model_id": "tiny/llama",
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "num_layers": LAYERS,
        "method": "mean_diff",
        "position": "last",
        "n_examples": 12,
        "data_sha256": "ab" * 32,
        "library_version": "0.1.0",
        "git_revision": None,
        "created": "2024-01-02T03:04:05+00:00",
        "seed": 7,
        "extra": {"note": "made up", "values": [1, 2.5]},
    }
    facts.update(changes)
    return VectorMetadata(**facts)  # type: ignore[arg-type]


def directions(
    layers: tuple[int, ...] = (0, 1, 3), seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[int, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        layer: torch.randn(HIDDEN, generator=generator, dtype=torch.float32).to(dtype)
        for layer in layers
    }


def make_vector(
    layers: tuple[int, ...] = (0, 1, 3),
    rng: int = 0,
    norms: dict[int, float] | None = None,
    dtype: torch.dtype = torch.float32,
    **meta_changes: object,
) -> SteeringVector:
    if norms is None:
        norms = {layer: 10.0 + layer + 0.123456789 for layer in layers}
    return SteeringVector(directions(layers, rng, dtype), meta(**meta_changes), norms)


def only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- construction --------------------------------------------------------------------------


def test_construct_and_views() -> None:
    raw = directions()
    v = SteeringVector(raw, meta(), {0: 1.0, 1: 2.0, 3: 3.0})
    assert v.layers == (0, 1, 3)
    assert len(v) == 3
    for layer in v.layers:
        assert torch.equal(v[layer], raw[layer])
    assert v.as_tensor().shape == (3, HIDDEN)
    assert torch.equal(v.as_tensor()[2], raw[3])
    assert v.norms() == pytest.approx({k: float(t.norm()) for k, t in raw.items()})
    assert v.identity == ModelIdentity("tiny/llama", "llama", HIDDEN, LAYERS)
    assert dict(v.activation_norms or {}) == {0: 1.0, 1: 2.0, 3: 3.0}


def test_layers_are_sorted() -> None:
    raw = directions((3, 0, 2))
    v = SteeringVector({3: raw[3], 0: raw[0], 2: raw[2]}, meta())
    assert v.layers == (0, 2, 3)


def test_vector_is_immutable_and_owns_its_tensors() -> None:
    raw = directions()
    before = {k: t.clone() for k, t in raw.items()}
    v = SteeringVector(raw, meta())
    raw[0].add_(100.0)
    raw[5] = torch.zeros(HIDDEN)
    assert torch.equal(v[0], before[0])
    assert v.layers == (0, 1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.metadata = meta(method="other")  # type: ignore[misc]
    with pytest.raises(TypeError):
        v.directions[2] = torch.zeros(HIDDEN)  # type: ignore[index]


def test_missing_layer_lookup() -> None:
    v = make_vector()
    with pytest.raises(VectorError, match="no layer 2"):
        v[2]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_direction_rejected(bad: float) -> None:
    raw = directions()
    raw[1][3] = bad
    with pytest.raises(VectorError, match=r"layer 1.*NaN or inf"):
        SteeringVector(raw, meta())


def test_wrong_hidden_size_rejected() -> None:
    raw = directions()
    raw[3] = torch.randn(HIDDEN + 1)
    with pytest.raises(VectorError, match=f"layer 3.*size {HIDDEN + 1}.*{HIDDEN}"):
        SteeringVector(raw, meta())


@pytest.mark.parametrize("layer", [LAYERS, LAYERS + 10, -1])
def test_layer_out_of_range_rejected(layer: int) -> None:
    with pytest.raises(VectorError, match=f"layer {layer} is out of range"):
        SteeringVector({layer: torch.randn(HIDDEN)}, meta())


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (torch.randn(2, HIDDEN), "1-D"),
        (torch.arange(HIDDEN), "floating point"),
        ([0.0] * HIDDEN, "1-D"),
    ],
    ids=["2d", "integer", "list"],
)
def test_bad_direction_type_rejected(value: object, needle: str) -> None:
    with pytest.raises(VectorError, match=needle):
        SteeringVector({0: value}, meta())  # type: ignore[dict-item]


@pytest.mark.parametrize("key", ["0", 1.0, True])
def test_non_int_layer_key_rejected(key: object) -> None:
    with pytest.raises(VectorError, match="not an integer"):
        SteeringVector({key: torch.randn(HIDDEN)}, meta())  # type: ignore[dict-item]


def test_empty_vector_rejected() -> None:
    with pytest.raises(VectorError, match="at least one layer"):
        SteeringVector({}, meta())


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_activation_norm_rejected(bad: float) -> None:
    with pytest.raises(VectorError, match="activation norm"):
        SteeringVector(directions(), meta(), {0: 1.0, 1: bad})


# -- save / load ---------------------------------------------------------------------------


def assert_identical(a: SteeringVector, b: SteeringVector) -> None:
    assert a.layers == b.layers
    for layer in a.layers:
        assert a[layer].dtype == b[layer].dtype
        assert torch.equal(a[layer], b[layer])
    assert a.metadata == b.metadata
    assert (None if a.activation_norms is None else dict(a.activation_norms)) == (
        None if b.activation_norms is None else dict(b.activation_norms)
    )
    assert a == b


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_save_load_bit_exact(tmp_path: Path, dtype: torch.dtype) -> None:
    v = make_vector(dtype=dtype)
    path = tmp_path / "v.safetensors"
    assert v.save(path) == path
    loaded = SteeringVector.load(path)
    assert_identical(v, loaded)
    for layer in v.layers:
        assert loaded[layer].dtype == dtype
    # Loading twice, or saving the loaded vector again, changes nothing.
    assert_identical(loaded, SteeringVector.load(path))
    assert_identical(v, SteeringVector.load(loaded.save(tmp_path / "again.safetensors")))


def test_save_load_keeps_every_metadata_field(tmp_path: Path) -> None:
    v = make_vector(git_revision="deadbeef", seed=None, extra={"base": "a", "tuned": "b"})
    loaded = SteeringVector.load(v.save(tmp_path / "v.safetensors"))
    assert dataclasses.asdict(loaded.metadata) == dataclasses.asdict(v.metadata)
    assert loaded.metadata.git_revision == "deadbeef"
    assert loaded.metadata.seed is None
    assert dict(loaded.metadata.extra) == {"base": "a", "tuned": "b"}


def test_save_load_without_activation_norms(tmp_path: Path) -> None:
    v = SteeringVector(directions(), meta())
    loaded = SteeringVector.load(v.save(tmp_path / "v.safetensors"))
    assert loaded.activation_norms is None
    assert_identical(v, loaded)


def test_save_load_partial_activation_norms(tmp_path: Path) -> None:
    v = SteeringVector(directions(), meta(), {1: 4.25})
    loaded = SteeringVector.load(v.save(tmp_path / "v.safetensors"))
    assert dict(loaded.activation_norms or {}) == {1: 4.25}
    assert_identical(v, loaded)


def test_save_load_empty_activation_norms(tmp_path: Path) -> None:
    # select() of layers without recorded norms produces exactly this.
    v = SteeringVector(directions(), meta(), {0: 1.0}).select([1, 3])
    assert v.activation_norms is not None
    loaded = SteeringVector.load(v.save(tmp_path / "v.safetensors"))
    assert loaded == v


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    v = make_vector()
    out = tmp_path / "nested" / "deeper" / "v.safetensors"
    v.save(out)
    assert only_files(out.parent) == ["v.safetensors"]
    # Overwriting keeps a single file, too.
    (-v).save(out)
    assert only_files(out.parent) == ["v.safetensors"]
    assert_identical(SteeringVector.load(out), -v)


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "v.safetensors"
    target.mkdir()  # renaming a file over a directory fails
    with pytest.raises((OSError, SteerlabError)):
        make_vector().save(target)
    assert only_files(tmp_path) == ["v.safetensors"]
    assert target.is_dir()
    assert list(target.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "v.safetensors"
    old = make_vector()
    old.save(target)
    before = target.read_bytes()

    def half_write(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(vector_module, "save_file", half_write)
    with pytest.raises(RuntimeError, match="disk full"):
        make_vector(rng=1).save(target)
    assert only_files(tmp_path) == ["v.safetensors"]
    assert target.read_bytes() == before


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.safetensors"
    with pytest.raises(VectorError, match="no such vector file") as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value)


def test_load_folder(tmp_path: Path) -> None:
    with pytest.raises(VectorError):
        SteeringVector.load(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"this is not a safetensors file", b"", b"\x00" * 64],
    ids=["text", "empty", "zeros"],
)
def test_load_not_safetensors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(VectorError) as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value)


def test_load_safetensors_without_steerlab_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"direction.0": torch.randn(HIDDEN)}, str(path))
    with pytest.raises(VectorError, match="no steerlab metadata") as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value)
    save_file({"direction.0": torch.randn(HIDDEN)}, str(path), metadata={"format": "other"})
    with pytest.raises(VectorError, match="no steerlab metadata"):
        SteeringVector.load(path)


def test_load_broken_metadata(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    save_file({"direction.0": torch.randn(HIDDEN)}, str(path), metadata={"steerlab": "{oops"})
    with pytest.raises(VectorError, match="not valid JSON"):
        SteeringVector.load(path)
    save_file(
        {"direction.0": torch.randn(HIDDEN)},
        str(path),
        metadata={"steerlab": json.dumps({"model_type": "llama", "method": "x"})},
    )
    with pytest.raises(VectorError, match="hidden_size"):
        SteeringVector.load(path)


def test_load_rejects_nan_in_file(tmp_path: Path) -> None:
    path = tmp_path / "nan.safetensors"
    bad = torch.randn(HIDDEN)
    bad[0] = float("nan")
    save_file({"direction.0": bad}, str(path), metadata={"steerlab": meta().to_json()})
    with pytest.raises(VectorError, match="NaN") as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_wrong_size_in_file(tmp_path: Path) -> None:
    path = tmp_path / "size.safetensors"
    save_file(
        {"direction.2": torch.randn(HIDDEN * 2)}, str(path), metadata={"steerlab": meta().to_json()}
    )
    with pytest.raises(VectorError, match="hidden size"):
        SteeringVector.load(path)


# -- arithmetic ----------------------------------------------------------------------------


def snapshot(v: SteeringVector) -> dict[int, torch.Tensor]:
    return {k: t.clone() for k, t in v.directions.items()}


def assert_unchanged(v: SteeringVector, before: dict[int, torch.Tensor]) -> None:
    assert v.layers == tuple(before)
    for layer, tensor in before.items():
        assert torch.equal(v[layer], tensor)


def test_add_and_subtract() -> None:
    a, b = make_vector(rng=0), make_vector(rng=1)
    sa, sb = snapshot(a), snapshot(b)
    total, diff = a + b, a - b
    assert total is not a and diff is not a
    for layer in a.layers:
        assert torch.equal(total[layer], sa[layer] + sb[layer])
        assert torch.equal(diff[layer], sa[layer] - sb[layer])
    assert "+" in total.metadata.method and "-" in diff.metadata.method
    assert total.metadata.hidden_size == HIDDEN
    assert_unchanged(a, sa)
    assert_unchanged(b, sb)


def test_add_with_different_layers_treats_missing_as_zero() -> None:
    a = make_vector(layers=(0, 1))
    b = make_vector(layers=(1, 2), rng=3)
    total = a + b
    assert total.layers == (0, 1, 2)
    assert torch.equal(total[0], a[0])
    assert torch.equal(total[1], a[1] + b[1])
    assert torch.equal(total[2], b[2])
    diff = a - b
    assert torch.equal(diff[2], -b[2])


@pytest.mark.parametrize("scalar", [2.0, -0.5, 3, 0.0])
def test_scalar_multiplication(scalar: float) -> None:
    v = make_vector()
    before = snapshot(v)
    for product in (v * scalar, scalar * v):
        assert product is not v
        for layer in v.layers:
            assert torch.equal(product[layer], before[layer] * scalar)
    assert_unchanged(v, before)


def test_negation_and_division() -> None:
    v = make_vector()
    before = snapshot(v)
    neg, half = -v, v / 2
    for layer in v.layers:
        assert torch.equal(neg[layer], -before[layer])
        assert torch.allclose(half[layer], before[layer] / 2)
    assert_unchanged(v, before)
    assert torch.equal((-neg)[1], before[1])


def test_arithmetic_keeps_identity_and_norms() -> None:
    v = make_vector()
    for derived in (v * 2, -v, v + v, v.normalized()):
        assert derived.identity == v.identity
        assert derived.metadata.position == v.metadata.position
        assert dict(derived.activation_norms or {}) == dict(v.activation_norms or {})
    assert (v * 2).metadata.method == "2 * (mean_diff)"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_multiplication_by_non_finite(bad: float) -> None:
    with pytest.raises(VectorError, match="not finite"):
        make_vector() * bad


def test_division_by_zero() -> None:
    with pytest.raises(VectorError, match="zero"):
        make_vector() / 0


def test_unsupported_operands() -> None:
    v = make_vector()
    with pytest.raises(TypeError):
        v + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        v * True  # type: ignore[operator]
    with pytest.raises(TypeError):
        v * "2"  # type: ignore[operator]
    with pytest.raises(TypeError):
        v * torch.ones(HIDDEN)  # type: ignore[operator]


@pytest.mark.parametrize(
    "change",
    [{"hidden_size": HIDDEN * 2}, {"num_layers": LAYERS + 1}, {"model_type": "gpt2"}],
    ids=["hidden", "layers", "type"],
)
def test_combining_vectors_of_different_models(change: dict[str, object]) -> None:
    a = make_vector()
    hidden = int(change.get("hidden_size", HIDDEN))  # type: ignore[call-overload]
    other_meta = meta(**change)
    b = SteeringVector({0: torch.randn(hidden)}, other_meta)
    with pytest.raises(ModelMismatchError):
        a + b
    with pytest.raises(ModelMismatchError):
        b - a
    with pytest.raises(ModelMismatchError):
        a.cosine(b)


def test_different_model_id_same_shape_can_be_combined() -> None:
    a = make_vector()
    b = make_vector(rng=2, model_id="somewhere/else")
    assert (a + b).layers == a.layers


def test_normalized() -> None:
    v = make_vector() * 7.5
    unit = v.normalized()
    for layer, norm in unit.norms().items():
        assert norm == pytest.approx(1.0, abs=1e-6)
        cos = torch.nn.functional.cosine_similarity(unit[layer], v[layer], dim=0)
        assert float(cos) == pytest.approx(1.0, abs=1e-6)
    assert "normalize" in unit.metadata.method


def test_normalized_zero_direction() -> None:
    v = SteeringVector({0: torch.ones(HIDDEN), 2: torch.zeros(HIDDEN)}, meta())
    with pytest.raises(VectorError, match=r"layer 2.*zero"):
        v.normalized()


def test_cosine() -> None:
    v = make_vector()
    for value in v.cosine(v).values():
        assert value == pytest.approx(1.0, abs=1e-12)
    for value in v.cosine(-v).values():
        assert value == pytest.approx(-1.0, abs=1e-12)
    assert set(v.cosine(3 * v)) == set(v.layers)
    partial = make_vector(layers=(1, 2))
    assert set(v.cosine(partial)) == {1}
    w = make_vector(rng=5)
    for layer, value in v.cosine(w).items():
        expected = torch.dot(v[layer].double(), w[layer].double()) / (
            v[layer].double().norm() * w[layer].double().norm()
        )
        assert value == pytest.approx(float(expected), abs=1e-12)
        assert -1.0 <= value <= 1.0


def test_select() -> None:
    v = make_vector()
    chosen = v.select([3, 0])
    assert chosen.layers == (0, 3)
    assert torch.equal(chosen[0], v[0])
    assert torch.equal(chosen[3], v[3])
    assert dict(chosen.activation_norms or {}) == {
        0: v.activation_norms[0],  # type: ignore[index]
        3: v.activation_norms[3],  # type: ignore[index]
    }
    assert chosen.metadata == v.metadata
    assert v.layers == (0, 1, 3)
    with pytest.raises(VectorError, match="no layer 2"):
        v.select([0, 2])
    with pytest.raises(VectorError):
        v.select([])


def test_equality() -> None:
    assert make_vector() == make_vector()
    assert make_vector() != make_vector(rng=1)
    assert make_vector() != make_vector(method="pca_diff")
    assert make_vector() != make_vector(norms={0: 1.0})
    assert make_vector() != make_vector(layers=(0, 1))


# -- compatibility and describe ------------------------------------------------------------


def test_check_compatible() -> None:
    v = make_vector()
    v.check_compatible(ModelIdentity("tiny/llama", "llama", HIDDEN, LAYERS))
    v.check_compatible(ModelIdentity("a/different/path", "llama", HIDDEN, LAYERS))
    with pytest.raises(ModelMismatchError, match="hidden size"):
        v.check_compatible(ModelIdentity("tiny/llama", "llama", HIDDEN * 2, LAYERS))
    with pytest.raises(ModelMismatchError, match="gpt2"):
        v.check_compatible(ModelIdentity("tiny/llama", "gpt2", HIDDEN, LAYERS))
    with pytest.raises(ModelMismatchError, match="layers"):
        v.check_compatible(ModelIdentity("tiny/llama", "llama", HIDDEN, LAYERS + 2))


def test_metadata_for_model_and_json_roundtrip() -> None:
    identity = ModelIdentity("m", "qwen2", 16, 5)
    made = VectorMetadata.for_model(identity, "probe", seed=3, n_examples=9)
    assert made.identity == identity
    assert (made.method, made.seed, made.n_examples) == ("probe", 3, 9)
    assert made.library_version
    assert made.created
    assert VectorMetadata.from_json(made.to_json(), "here") == made


def test_describe_is_json_serialisable() -> None:
    v = make_vector(layers=(0, 1, 2, 3))
    summary = v.describe()
    text = json.dumps(summary)
    back = json.loads(text)
    assert back["method"] == "mean_diff"
    assert back["layers"] == "0-3"
    assert back["hidden_size"] == HIDDEN
    assert back["num_layers"] == LAYERS
    assert set(back["norms"]) == {"0", "1", "2", "3"}
    assert back["norms"]["2"] == pytest.approx(v.norms()[2], abs=1e-5)
    assert set(back["activation_norms"]) == {"0", "1", "2", "3"}
    assert make_vector(layers=(0, 3)).describe()["layers"] == "0,3"
    no_norms = SteeringVector(directions(), meta()).describe()
    assert no_norms["activation_norms"] is None
    json.dumps(no_norms)
    for value in back["norms"].values():
        assert math.isfinite(value)


def test_sha256_identifies_the_directions(tmp_path: Path) -> None:
    vector = make_vector()
    assert vector.sha256() == make_vector().sha256()
    assert vector.sha256() == SteeringVector.load(vector.save(tmp_path / "v.safetensors")).sha256()
    assert vector.sha256() != make_vector(rng=1).sha256()
    assert vector.sha256() != make_vector(dtype=torch.float16).sha256()
    assert vector.sha256([0, 1]) != vector.sha256()
    assert vector.sha256([0, 1]) == vector.select([0, 1]).sha256()
    # Metadata is not part of it: the same directions from another run hash alike.
    assert vector.sha256() == make_vector(seed=99, method="probe").sha256()


def test_calibration_round_trips_and_stays_out_of_the_recipe(tmp_path):
    from steerlab.vector import CALIBRATION_KEY

    identity = ModelIdentity("tiny", "llama", 8, 3)
    vector = SteeringVector({1: torch.ones(8)}, VectorMetadata.for_model(identity, "test"))
    with pytest.raises(VectorError, match="no calibration"):
        vector.recommended_coefficients()
    record = {"scale": "norm", "layers": [1], "positive": 0.2, "negative": -0.15, "bound": 1.5}
    calibrated = vector.with_calibration(record)
    loaded = SteeringVector.load(calibrated.save(tmp_path / "v.safetensors"))
    assert loaded.calibration == {**record, "positive": 0.2, "negative": -0.15}
    assert loaded.recommended_coefficients() == (-0.15, 0.0, 0.2)
    assert loaded.metadata.recipe() == vector.metadata.recipe()
    assert CALIBRATION_KEY not in vector.metadata.extra  # the original is unchanged
    one_sided = vector.with_calibration({**record, "negative": None})
    assert one_sided.recommended_coefficients() == (0.0, 0.2)
    for bad, message in (
        ({**record, "scale": "raw"}, "scale 'raw'"),
        ({**record, "layers": []}, "layers"),
        ({**record, "positive": -1.0}, "below 0"),
        ({**record, "negative": float("nan")}, "negative nan"),
    ):
        with pytest.raises(VectorError, match=message):
            vector.with_calibration(bad)
