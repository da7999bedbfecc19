"""``steerlab calibrate`` (:mod:`steerlab.cli.calibration`), in-process on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, extract_args, invoke, save_tiny, write_pairs

import steerlab as sl


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("calibrate")
    model_dir = save_tiny(root / "model")
    pairs = write_pairs(root / "pairs.jsonl")
    vector = root / "vector.safetensors"
    assert invoke(extract_args(model_dir, pairs, vector)).exit_code == 0
    texts = root / "texts.txt"
    texts.write_text("The quick brown fox jumps over the lazy dog.\nTell me about your day.\n")
    return {"model": model_dir, "pairs": pairs, "vector": vector, "texts": texts}


def calibrate_args(s: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "calibrate",
        "--model",
        str(s["model"]),
        "--vector",
        str(s["vector"]),
        "--behavior",
        "pairs:builtin:happy_sad",
        "--text",
        str(s["texts"]),
        "-o",
        str(out),
        *extra,
    ]


def test_calibrate_writes_json_and_plot_and_stores_with_write(setup, tmp_path: Path) -> None:
    result = invoke(calibrate_args(setup, tmp_path / "cal"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert summary  # the recommendation and the measured grid
    assert (tmp_path / "cal" / "calibration.png").is_file()
    assert sl.SteeringVector.load(setup["vector"]).calibration is None  # not without --write
    written = tmp_path / "v.safetensors"
    written.write_bytes(setup["vector"].read_bytes())
    stored = invoke(calibrate_args({**setup, "vector": written}, tmp_path / "cal2", "--write"))
    assert stored.exit_code == 0, stored.output
    record = sl.SteeringVector.load(written).calibration
    assert record is not None and record["scale"] == "norm"


def test_bad_settings_are_one_line_errors(setup, tmp_path: Path) -> None:
    bad_scale = invoke(calibrate_args(setup, tmp_path / "a", "--scale", "fraction"))
    assert_one_line_error(bad_scale, "fraction")
    bad_bound = invoke(calibrate_args(setup, tmp_path / "b", "--perplexity-bound", "nan"))
    assert_one_line_error(bad_bound, "--perplexity-bound")
