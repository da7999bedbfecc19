"""``steerlab extract`` and ``info`` (:mod:`steerlab.cli.vectors`), in-process on tiny models.

``diff`` and ``compare`` are tested with the library they call (tests/extract/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import PAIRS, assert_one_line_error, extract_args, invoke, save_tiny, write_pairs

from conftest import make_model
from steerlab.data import load_pairs, pairs_sha256
from steerlab.extract import extract as api_extract
from steerlab.models import load_model
from steerlab.vector import SteeringVector


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl")


@pytest.fixture(scope="module")
def vector_file(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, pairs_file: Path
) -> Path:
    out = tmp_path_factory.mktemp("vector") / "out.safetensors"
    result = invoke(extract_args(model_dir, pairs_file, out))
    assert result.exit_code == 0, result.output
    return out


# -- a saved model folder ------------------------------------------------------------------


def test_load_model_of_saved_folder(model_dir: Path) -> None:
    model, tokenizer = load_model(str(model_dir))
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token is not None
    assert tokenizer.pad_token_id is not None
    assert not model.training
    assert model.config.hidden_size == 32
    assert model.config.steerlab_model_id == str(model_dir)


def test_load_model_gives_pad_token_when_missing(tmp_path: Path) -> None:
    model, tokenizer = make_model("llama")
    tokenizer.pad_token = None
    tokenizer.padding_side = "right"
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    _, loaded = load_model(str(tmp_path))
    assert loaded.padding_side == "left"
    assert loaded.pad_token == loaded.eos_token == "<|im_end|>"


# -- extract / info ------------------------------------------------------------------------


def test_extract_writes_loadable_vector(
    vector_file: Path, model_dir: Path, pairs_file: Path
) -> None:
    vector = SteeringVector.load(vector_file)
    meta = vector.metadata
    assert meta.method == "mean_diff"
    assert vector.layers == (0, 1, 2)
    assert (meta.model_type, meta.hidden_size, meta.num_layers) == ("llama", 32, 3)
    assert meta.n_examples == len(PAIRS)
    assert meta.data_sha256 == pairs_sha256(load_pairs(pairs_file))
    assert meta.position == "last"
    assert sorted(p.name for p in vector_file.parent.iterdir()) == ["out.safetensors"]
    # The CLI is a thin shell: the same call through the API gives the same directions.
    model, tokenizer = load_model(str(model_dir))
    expected = api_extract(
        model, tokenizer, load_pairs(pairs_file), method="mean_diff", progress=False
    )
    for layer in vector.layers:
        assert torch.allclose(vector[layer], expected[layer], atol=1e-6)


def test_extract_layers_and_limit(tmp_path: Path, model_dir: Path, pairs_file: Path) -> None:
    out = tmp_path / "sub" / "v.safetensors"
    result = invoke(
        [
            "extract",
            "--model",
            str(model_dir),
            "--pairs",
            str(pairs_file),
            "-o",
            str(out),
            "--method",
            "pca_diff",
            "--layers",
            "1-2",
            "--limit",
            "3",
        ]
    )
    assert result.exit_code == 0, result.output
    vector = SteeringVector.load(out)
    assert vector.layers == (1, 2)
    assert vector.metadata.method == "pca_diff"
    assert vector.metadata.n_examples == 3


def test_extract_negate_is_the_vector_of_the_swapped_pairs(
    tmp_path: Path, model_dir: Path, pairs_file: Path
) -> None:
    swapped = tmp_path / "swapped.jsonl"
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    swapped.write_text(
        "".join(
            json.dumps({**r, "positive": r["negative"], "negative": r["positive"]}) + "\n"
            for r in rows
        )
    )
    negated, flipped = tmp_path / "negated.safetensors", tmp_path / "flipped.safetensors"
    common = ["--method", "mean_diff"]
    assert (
        invoke([*extract_args(model_dir, pairs_file, negated), *common, "--negate"]).exit_code == 0
    )
    assert invoke([*extract_args(model_dir, swapped, flipped), *common]).exit_code == 0
    a, b = SteeringVector.load(negated), SteeringVector.load(flipped)
    assert a.layers == b.layers
    for layer in a.layers:
        torch.testing.assert_close(a[layer], b[layer], rtol=0, atol=1e-6)
    # The same texts, read in another order: their mean norms agree to rounding.
    assert a.activation_norms is not None and b.activation_norms is not None
    assert a.activation_norms.keys() == b.activation_norms.keys()
    for layer, norm in a.activation_norms.items():
        assert norm == pytest.approx(b.activation_norms[layer], rel=1e-6)


def test_info(vector_file: Path) -> None:
    result = invoke(["info", str(vector_file)])
    assert result.exit_code == 0, result.output
    assert "mean_diff" in result.stdout
    assert "0-2" in result.stdout
    assert "llama" in result.stdout


def test_info_json(vector_file: Path) -> None:
    result = invoke(["info", "--json", str(vector_file)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "mean_diff"
    assert summary["layers"] == "0-2"
    assert summary["hidden_size"] == 32
    assert set(summary["norms"]) == {"0", "1", "2"}
    assert summary == SteeringVector.load(vector_file).describe()


# -- errors --------------------------------------------------------------------------------


def test_extract_malformed_pairs(tmp_path: Path, model_dir: Path) -> None:
    pairs = tmp_path / "bad.jsonl"
    pairs.write_text(
        json.dumps(PAIRS[0]) + "\n" + json.dumps(PAIRS[1]) + "\n" + '{"positive": "x",\n'
    )
    out = tmp_path / "out.safetensors"
    assert_one_line_error(invoke(extract_args(model_dir, pairs, out)), f"{pairs}:3")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_extract_missing_field(tmp_path: Path, model_dir: Path) -> None:
    pairs = tmp_path / "bad.jsonl"
    pairs.write_text(json.dumps(PAIRS[0]) + "\n" + json.dumps({"positive": "only"}) + "\n")
    out = tmp_path / "out.safetensors"
    assert_one_line_error(invoke(extract_args(model_dir, pairs, out)), f"{pairs}:2", "negative")
    assert not out.exists()


def test_extract_missing_pairs_file(tmp_path: Path, model_dir: Path) -> None:
    pairs = tmp_path / "nowhere.jsonl"
    out = tmp_path / "out.safetensors"
    assert_one_line_error(invoke(extract_args(model_dir, pairs, out)), str(pairs))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_extract_layer_out_of_range(tmp_path: Path, model_dir: Path, pairs_file: Path) -> None:
    out = tmp_path / "out.safetensors"
    line = assert_one_line_error(
        invoke(extract_args(model_dir, pairs_file, out, "--layers", "99")), "99"
    )
    assert "range" in line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_extract_unknown_method(tmp_path: Path, model_dir: Path, pairs_file: Path) -> None:
    out = tmp_path / "out.safetensors"
    args = extract_args(model_dir, pairs_file, out)
    args[args.index("mean_diff")] = "magic"
    assert_one_line_error(invoke(args), "magic")
    assert not out.exists()


def test_extract_missing_model_folder(tmp_path: Path, pairs_file: Path) -> None:
    out = tmp_path / "out.safetensors"
    missing = tmp_path / "no-model"
    missing.mkdir()
    assert_one_line_error(invoke(extract_args(missing, pairs_file, out)), str(missing))
    assert not out.exists()


def test_info_missing_vector(tmp_path: Path) -> None:
    path = tmp_path / "missing.safetensors"
    assert_one_line_error(invoke(["info", str(path)]), str(path))
    assert_one_line_error(invoke(["info", "--json", str(path)]), str(path))


def test_info_not_a_vector(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_text("not a vector")
    assert_one_line_error(invoke(["info", str(path)]), str(path))
