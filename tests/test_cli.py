"""Tests for the ``steerlab`` command, run in-process against tiny saved models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

from conftest import make_model
from steerlab.cli import app, parse_coefficients
from steerlab.data import load_pairs, pairs_sha256
from steerlab.errors import SpecError
from steerlab.extract import extract as api_extract
from steerlab.models import load_model
from steerlab.provenance import library_version
from steerlab.vector import SteeringVector

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^Loading weights: +\d+%\|")
PAIRS = [
    {"prompt": "How are you?", "positive": "I am happy today.", "negative": "I feel sad."},
    {"prompt": "Tell me about your day.", "positive": "It was a good day.", "negative": "Gloomy."},
    {"positive": "The weather is lovely and bright.", "negative": "The sky is grey and cold."},
    {"prompt": "Mood?", "system": "Be brief.", "positive": "Happy!", "negative": "Sad."},
]


def save_tiny(folder: Path, hidden: int = 32, layers: int = 3) -> Path:
    model, tokenizer = make_model("llama", layers=layers, hidden=hidden)
    tokenizer.padding_side = "right"  # load_model must turn this back to left
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama-48"), hidden=48)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PAIRS), encoding="utf-8")
    return path


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def vector_file(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, pairs_file: Path
) -> Path:
    out = tmp_path_factory.mktemp("vector") / "out.safetensors"
    args = ["extract", "--model", str(model_dir), "--pairs", str(pairs_file)]
    result = invoke([*args, "-o", str(out), "--method", "mean_diff"])
    assert result.exit_code == 0, result.output
    return out


def assert_one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [ANSI.sub("", line) for line in result.stderr.strip().splitlines()]
    # transformers may draw a "Loading weights" progress bar first; nothing else may appear.
    others = [line for line in lines if line.strip() and not PROGRESS.search(line)]
    assert len(others) == 1, result.stderr
    line = others[0]
    assert line.startswith("error:"), line
    assert lines[-1] == line
    for needle in needles:
        assert needle in line, line
    return line


# -- basics --------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"steerlab {library_version()}"


def test_no_args_shows_help() -> None:
    result = invoke([])
    assert "extract" in result.output
    assert "generate" in result.output


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


# -- parse_coefficients --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-6,0,6", [-6.0, 0.0, 6.0]),
        (" 1.5 ", [1.5]),
        ("-2,0,2,", [-2.0, 0.0, 2.0]),
        ("-8:8:17", [float(x) for x in range(-8, 9)]),
        ("0:1:5", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("3:9:1", [3.0]),
        ("1:-1:3", [1.0, 0.0, -1.0]),
    ],
)
def test_parse_coefficients(text: str, expected: list[float]) -> None:
    assert parse_coefficients(text) == pytest.approx(expected, abs=1e-12)


def test_parse_coefficients_range_endpoints_exact() -> None:
    values = parse_coefficients("-0.3:0.3:7")
    assert len(values) == 7
    assert values[0] == -0.3
    assert values[-1] == 0.3
    assert values[3] == 0.0


@pytest.mark.parametrize("text", ["", ",", "a,b", "1:2", "1:2:3:4", "0:1:0", "0:1:-2", "0:1:x"])
def test_parse_coefficients_errors(text: str) -> None:
    with pytest.raises(SpecError):
        parse_coefficients(text)


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


# -- generate ------------------------------------------------------------------------------


def generate_args(model_dir: Path, vector_file: Path, coefficients: str) -> list[str]:
    return [
        "generate",
        "--model",
        str(model_dir),
        "--vector",
        str(vector_file),
        "--coefficients",
        coefficients,
        "--max-new-tokens",
        "4",
        "--json",
        "hello",
    ]


def test_generate_json(model_dir: Path, vector_file: Path) -> None:
    result = invoke(generate_args(model_dir, vector_file, "-2,0,2"))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 3
    assert [row["coefficient"] for row in rows] == [-2.0, 0.0, 2.0]
    assert all(row["prompt"] == "hello" for row in rows)
    assert all(isinstance(row["text"], str) for row in rows)


def test_generate_json_stdout_is_only_json_lines(model_dir: Path, vector_file: Path) -> None:
    result = invoke(generate_args(model_dir, vector_file, "0"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line)["coefficient"] for line in lines] == [0.0]


def test_generate_range_coefficients_with_equals(model_dir: Path, vector_file: Path) -> None:
    args = generate_args(model_dir, vector_file, "x")
    at = args.index("--coefficients")
    args[at : at + 2] = ["--coefficients=-1:1:3"]
    result = invoke([*args[:-1], "hi", "there"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(r["prompt"], r["coefficient"]) for r in rows] == [
        ("hi", -1.0),
        ("hi", 0.0),
        ("hi", 1.0),
        ("there", -1.0),
        ("there", 0.0),
        ("there", 1.0),
    ]


def test_generate_table_output(model_dir: Path, vector_file: Path) -> None:
    args = [a for a in generate_args(model_dir, vector_file, "0,3") if a != "--json"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "hello" in result.stdout
    assert "+3" in result.stdout


# -- errors --------------------------------------------------------------------------------


def extract_args(model_dir: Path, pairs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "extract",
        "--model",
        str(model_dir),
        "--pairs",
        str(pairs),
        "-o",
        str(out),
        "--method",
        "mean_diff",
        *extra,
    ]


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


@pytest.mark.parametrize("value", ["nan", "0,inf", "-inf:1:3"])
def test_generate_non_finite_coefficient(model_dir: Path, vector_file: Path, value: str) -> None:
    result = invoke(generate_args(model_dir, vector_file, value))
    line = assert_one_line_error(result, "not finite")
    assert "nan" in line or "inf" in line
    assert result.stdout == ""


def test_generate_bad_coefficients(model_dir: Path, vector_file: Path) -> None:
    assert_one_line_error(invoke(generate_args(model_dir, vector_file, "a,b")), "a,b")


def test_generate_nan_coefficient_without_vector(model_dir: Path) -> None:
    args = [
        "generate",
        "--model",
        str(model_dir),
        "--coefficients",
        "nan",
        "--max-new-tokens",
        "2",
        "hello",
    ]
    assert_one_line_error(invoke(args), "nan")


def test_generate_missing_vector(tmp_path: Path, model_dir: Path) -> None:
    path = tmp_path / "missing.safetensors"
    assert_one_line_error(invoke(generate_args(model_dir, path, "1")), str(path))


def test_generate_vector_from_other_model(wide_model_dir: Path, vector_file: Path) -> None:
    result = invoke(generate_args(wide_model_dir, vector_file, "-2,0,2"))
    line = assert_one_line_error(result, "hidden size")
    assert "32" in line and "48" in line
    assert result.stdout.strip() == ""


def test_generate_layer_not_in_vector(tmp_path: Path, model_dir: Path, pairs_file: Path) -> None:
    out = tmp_path / "v1.safetensors"
    assert invoke(extract_args(model_dir, pairs_file, out, "--layers", "1")).exit_code == 0
    args = generate_args(model_dir, out, "1")
    result = invoke([*args[:-1], "--layers", "99", "hello"])
    assert_one_line_error(result, "99")


def test_generate_unknown_operator(model_dir: Path, vector_file: Path) -> None:
    args = generate_args(model_dir, vector_file, "1")
    result = invoke([*args[:-1], "--operator", "multiply", "hello"])
    assert_one_line_error(result, "multiply")
