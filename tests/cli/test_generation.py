"""``steerlab generate`` (:mod:`steerlab.cli.generation`), in-process on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, extract_args, invoke, save_tiny, write_pairs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama-48"), hidden=48)


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


def test_generate_output_writes_the_generations_as_jsonl(
    tmp_path: Path, model_dir: Path, vector_file: Path
) -> None:
    out = tmp_path / "sub" / "generations.jsonl"
    args = [a for a in generate_args(model_dir, vector_file, "-2,0,2") if a != "--json"]
    result = invoke([*args[:-1], "-o", str(out), args[-1]])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["coefficient"] for row in rows] == [-2.0, 0.0, 2.0]
    assert all(row["prompt"] == "hello" and isinstance(row["text"], str) for row in rows)
    assert [p.name for p in out.parent.iterdir()] == ["generations.jsonl"]  # nothing beside it
