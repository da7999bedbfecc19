"""``steerlab export gguf`` and ``steerlab import gguf`` (:mod:`steerlab.cli.exporting`),
in-process on a tiny saved llama (3 layers, hidden 32)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, extract_args, invoke, save_tiny, write_pairs

from steerlab.vector import SteeringVector


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("vector")
    out = root / "v.safetensors"
    result = invoke(extract_args(model_dir, write_pairs(root / "pairs.jsonl"), out))
    assert result.exit_code == 0, result.output
    return out


def direction_tensors(path: Path) -> dict[str, np.ndarray]:
    return {t.name: np.asarray(t.data) for t in gguf.GGUFReader(path).tensors}


def write_cvector_file(path: Path, hint: str = "llama", width: int = 32) -> Path:
    """llama.cpp cvector-generator's layout for a 3-layer model: direction.1 (read at block
    0) and direction.2 (read at block 1), here filled with 1 and 2."""
    writer = gguf.GGUFWriter(path, "controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_int32("controlvector.layer_count", 2)
    for n in (1, 2):
        writer.add_tensor(f"direction.{n}", np.full(width, n, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- export ------------------------------------------------------------------------------------


def test_export_bakes_coefficient_and_scale(vector_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.gguf"
    args = ["export", "gguf", str(vector_file), "-o", str(out), "--layers", "1-2"]
    result = invoke([*args, "--coefficient", "0.5", "--scale", "norm"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "--control-vector" in result.stdout
    assert "note: steering pushes" in result.stdout and "gibberish" in result.stdout  # 2 x 0.5
    vector = SteeringVector.load(vector_file)
    found = direction_tensors(out)
    assert sorted(found) == ["direction.1", "direction.2"]
    for layer in (1, 2):
        v = vector[layer].double().numpy()
        expected = (0.5 * vector.activation_norms[layer] * v / np.linalg.norm(v)).astype(np.float32)
        assert np.array_equal(found[f"direction.{layer}"], expected)


def test_export_coefficient_1_scale_vector_is_the_vector_as_extracted(
    vector_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "v.gguf"
    args = ["export", "gguf", str(vector_file), "-o", str(out), "--layers", "2"]
    result = invoke([*args, "--coefficient", "1", "--scale", "vector"])
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stdout
    assert np.array_equal(
        direction_tensors(out)["direction.2"], SteeringVector.load(vector_file)[2].numpy()
    )


def test_export_defaults_norm_scale_and_leaves_out_layer_0(
    vector_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "v.gguf"
    result = invoke(["export", "gguf", str(vector_file), "-o", str(out), "--coefficient", "0.1"])
    assert result.exit_code == 0, result.output
    assert "layer 0 left out" in result.stdout
    vector = SteeringVector.load(vector_file)
    found = direction_tensors(out)
    assert sorted(found) == ["direction.1", "direction.2"]  # the vector has layers 0-2
    for layer in (1, 2):  # scale norm: 0.1 of the layer's activation norm
        push = float(np.linalg.norm(found[f"direction.{layer}"]))
        assert push == pytest.approx(0.1 * vector.activation_norms[layer], rel=1e-6)


def test_export_needs_a_coefficient(vector_file: Path, tmp_path: Path) -> None:
    result = invoke(["export", "gguf", str(vector_file), "-o", str(tmp_path / "v.gguf")])
    assert result.exit_code == 2 and "--coefficient" in result.output
    assert list(tmp_path.iterdir()) == []


def calibrated_copy(vector_file: Path, folder: Path, negative: float | None = -0.2) -> Path:
    """The vector with a calibration as `steerlab calibrate --write` stores it."""
    record = {"scale": "norm", "layers": [1, 2], "positive": 0.15, "negative": negative}
    calibrated = SteeringVector.load(vector_file).with_calibration(record)
    return calibrated.save(folder / "calibrated.safetensors")


@pytest.mark.parametrize("choice,value", [("auto", 0.15), ("-auto", -0.2)])
def test_export_auto_uses_the_calibration(
    vector_file: Path, tmp_path: Path, choice: str, value: float
) -> None:
    calibrated = calibrated_copy(vector_file, tmp_path)
    out = tmp_path / "v.gguf"
    result = invoke(["export", "gguf", str(calibrated), "-o", str(out), f"--coefficient={choice}"])
    assert result.exit_code == 0, result.output
    assert f"coefficient {value:g} (scale norm, layers 1,2)" in result.stdout
    vector = SteeringVector.load(vector_file)
    found = direction_tensors(out)
    assert sorted(found) == ["direction.1", "direction.2"]
    for layer in (1, 2):
        v = vector[layer].double().numpy()
        expected = value * vector.activation_norms[layer] * v / np.linalg.norm(v)
        assert np.array_equal(found[f"direction.{layer}"], expected.astype(np.float32))


@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--coefficient", "auto", "--scale", "unit"], ("--scale unit", "calibrated with")),
        (["--coefficient", "auto", "--layers", "2"], ("--layers 2", "calibrated at")),
        (["--coefficient=-auto"], ("no negative coefficient",)),
        (["--coefficient", "strong"], ("--coefficient", "'auto'")),
    ],
)
def test_export_auto_bad_inputs(
    vector_file: Path, tmp_path: Path, extra: list[str], needles: tuple[str, ...]
) -> None:
    calibrated = calibrated_copy(vector_file, tmp_path, negative=None)
    out = tmp_path / "v.gguf"
    assert_one_line_error(
        invoke(["export", "gguf", str(calibrated), "-o", str(out), *extra]), *needles
    )
    assert not out.exists()


def test_export_auto_needs_a_calibration(vector_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.gguf"
    result = invoke(["export", "gguf", str(vector_file), "-o", str(out), "--coefficient", "auto"])
    assert_one_line_error(result, "no calibration", "steerlab calibrate")
    assert not out.exists()


def test_export_deprecated_normalize_means_unit(vector_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.gguf"
    args = ["export", "gguf", str(vector_file), "-o", str(out), "--layers", "1", "--normalize"]
    result = invoke([*args, "--coefficient", "1"])
    assert result.exit_code == 0, result.output
    assert "--scale unit" in result.stdout
    assert np.linalg.norm(direction_tensors(out)["direction.1"]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--layers", "0-2"], ("layer 0", "--layers 1-2")),
        (["--layers", "1", "--operator", "ablate"], ("operator 'ablate'",)),
        (["--layers", "1", "--positions", "prompt"], ("positions 'prompt'",)),
        (["--layers", "1", "--coefficient", "nan"], ("--coefficient", "finite")),
        (["--layers", "1", "--scale", "big"], ("scale 'big'",)),
        (["--layers", "7"], ("layer",)),
    ],
)
def test_export_bad_inputs(
    vector_file: Path, tmp_path: Path, extra: list[str], needles: tuple[str, ...]
) -> None:
    out = tmp_path / "v.gguf"
    coefficient = [] if "--coefficient" in extra else ["--coefficient", "1"]
    result = invoke(["export", "gguf", str(vector_file), "-o", str(out), *coefficient, *extra])
    assert_one_line_error(result, *needles)
    assert list(tmp_path.iterdir()) == []


def test_export_norm_scale_needs_norms(vector_file: Path, tmp_path: Path) -> None:
    vector = SteeringVector.load(vector_file)
    bare = SteeringVector(dict(vector.directions), vector.metadata).save(tmp_path / "bare.st")
    out = tmp_path / "v.gguf"
    args = ["export", "gguf", str(bare), "-o", str(out), "--layers", "1", "--coefficient", "0.1"]
    assert_one_line_error(invoke(args), "activation norm", "--scale unit or --scale vector")
    assert not out.exists()


def test_export_missing_vector_and_folder_output(vector_file: Path, tmp_path: Path) -> None:
    missing = invoke(
        ["export", "gguf", str(tmp_path / "no.safetensors"), "-o", "x.gguf", "--coefficient", "1"]
    )
    assert_one_line_error(missing, "no such vector file")
    folder = invoke(
        [
            "export",
            "gguf",
            str(vector_file),
            "-o",
            str(tmp_path),
            "--layers",
            "1",
            "--coefficient",
            "1",
        ]
    )
    assert_one_line_error(folder, "is a folder")


# -- import ------------------------------------------------------------------------------------


def test_export_then_import_round_trip(vector_file: Path, model_dir: Path, tmp_path: Path) -> None:
    gguf_file = tmp_path / "v.gguf"
    export = ["export", "gguf", str(vector_file), "-o", str(gguf_file), "--layers", "1-2"]
    assert invoke([*export, "--coefficient", "1", "--scale", "vector"]).exit_code == 0
    out = tmp_path / "back.safetensors"
    result = invoke(["import", "gguf", str(gguf_file), "--model", str(model_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout
    back, original = SteeringVector.load(out), SteeringVector.load(vector_file)
    assert back.layers == (1, 2)
    for layer in (1, 2):
        assert torch.equal(back[layer], original[layer])
    assert back.metadata.method == original.metadata.method
    assert back.metadata.extra["gguf"]["file"] == "v.gguf"


def test_import_cvector_generator_file_with_layer_offset(model_dir: Path, tmp_path: Path) -> None:
    source = write_cvector_file(tmp_path / "cv.gguf")
    out = tmp_path / "v.safetensors"
    base = ["import", "gguf", str(source), "--model", str(model_dir), "-o", str(out)]
    assert invoke(base).exit_code == 0
    assert SteeringVector.load(out).layers == (1, 2)
    result = invoke([*base, "--layer-offset", "-1"])
    assert result.exit_code == 0, result.output
    shifted = SteeringVector.load(out)
    assert shifted.layers == (0, 1)
    assert torch.equal(shifted[0], torch.ones(32)) and shifted.metadata.method == "gguf"
    too_far = invoke([*base, "--layer-offset", "1"])
    assert_one_line_error(too_far, "direction.2", "layer 3", "3-layer model")


def test_import_other_hint_is_a_note(model_dir: Path, tmp_path: Path) -> None:
    source = write_cvector_file(tmp_path / "cv.gguf", hint="qwen2")
    out = tmp_path / "v.safetensors"
    result = invoke(["import", "gguf", str(source), "--model", str(model_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "note:" in result.stdout and "'qwen2'" in result.stdout
    assert out.exists()


@pytest.mark.parametrize("case", ["junk", "width", "model_file", "missing"])
def test_import_bad_inputs(model_dir: Path, tmp_path: Path, case: str) -> None:
    source = tmp_path / "in.gguf"
    if case == "junk":
        source.write_bytes(b"not a gguf file at all")
        needles: tuple[str, ...] = ("not a readable GGUF file",)
    elif case == "width":
        write_cvector_file(source, width=8)
        needles = ("length 8", "hidden size is 32")
    elif case == "model_file":
        writer = gguf.GGUFWriter(source, "llama")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        needles = ("general.architecture is 'llama'",)
    else:
        needles = ("no such GGUF file",)
    out = tmp_path / "v.safetensors"
    result = invoke(["import", "gguf", str(source), "--model", str(model_dir), "-o", str(out)])
    assert_one_line_error(result, *needles)
    assert not out.exists()


def test_import_needs_a_model(tmp_path: Path) -> None:
    source = write_cvector_file(tmp_path / "cv.gguf")
    result = invoke(["import", "gguf", str(source), "-o", str(tmp_path / "v.safetensors")])
    assert result.exit_code == 2
    assert "--model" in result.stderr
