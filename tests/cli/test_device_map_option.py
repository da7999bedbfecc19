"""``--device-map`` on the commands that load one model to steer, record or generate with
(extract, diff, generate, calibrate, dataset qa, fold, serve): a split map gives the same
results as no map; a bad value is one line on stderr, exit 1, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import (
    assert_one_line_error,
    extract_args,
    invoke,
    save_tiny,
    write_pairs,
)

from steerlab.vector import SteeringVector

# The tiny llama's modules: embeddings, block 1 and the head offloaded to disk.
SPLIT = {
    "model.embed_tokens": "disk",
    "model.layers.0": "cpu",
    "model.layers.1": "disk",
    "model.layers.2": "cpu",
    "model.norm": "cpu",
    "model.rotary_emb": "cpu",
    "lm_head": "disk",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("device-map")
    model = save_tiny(root / "tiny")
    pairs = write_pairs(root / "pairs.jsonl")
    vector = root / "v.safetensors"
    assert invoke(extract_args(model, pairs, vector)).exit_code == 0
    split = root / "split.json"
    split.write_text(json.dumps(SPLIT), encoding="utf-8")
    questions = root / "questions.txt"
    questions.write_text("How are you?\nWhat is the capital of France?\n", encoding="utf-8")
    return {
        "root": root,
        "model": model,
        "pairs": pairs,
        "vector": vector,
        "split": split,
        "questions": questions,
    }


def commands(s: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """Each command that takes ``--device-map``, writing to ``out`` where it writes."""
    model, vector = str(s["model"]), str(s["vector"])
    return {
        "extract": extract_args(s["model"], s["pairs"], out),
        "diff": ["diff", "--base", model, "--tuned", model, "--prompts", str(s["questions"]),
                 "-o", str(out)],
        "generate": ["generate", "-m", model, "--vector", vector, "--coefficients", "-1,1",
                     "--max-new-tokens", "3", "--json", "-o", str(out), "hello"],
        "calibrate": ["calibrate", "-m", model, "--vector", vector, "--behavior",
                      "pairs:builtin:happy_sad", "-o", str(out)],
        "dataset qa": ["dataset", "qa", "-m", model, "--questions", str(s["questions"]),
                       "--max-new-tokens", "3", "-o", str(out)],
        "fold": ["fold", "-m", model, "-v", vector, "--coefficient", "0.2", "-o", str(out)],
        "serve": ["serve", "-m", model, "--port", "1"],
    }  # fmt: skip


COMMANDS = ("extract", "diff", "generate", "calibrate", "dataset qa", "fold", "serve")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_the_option(command: str) -> None:
    result = invoke([*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "--device-map" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_value_fails_before_loading(command: str, setup, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke([*commands(setup, out)[command], "--device-map", "everywhere"])
    assert_one_line_error(result, "--device-map 'everywhere'", "auto", "JSON file")
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("{not json", ("not valid JSON",)),
        ('["model.layers.0"]', ("expected a JSON object",)),
        ('{"model.layers.0": null}', ("expected a JSON object",)),
        ('{"": "nope"}', ("device 'nope' is not a torch device",)),
        ('{"": "meta"}', ("holds no weights",)),
        ("{}", ("the device map is empty",)),
    ],
)
def test_a_bad_map_file_is_one_line(content: str, needles, setup, tmp_path: Path) -> None:
    bad = tmp_path / "map.json"
    bad.write_text(content, encoding="utf-8")
    out = tmp_path / "v.safetensors"
    result = invoke([*extract_args(setup["model"], setup["pairs"], out), "--device-map", str(bad)])
    assert_one_line_error(result, *needles)
    assert not out.exists()


def test_extract_with_a_split_map_gives_the_same_vector(setup, tmp_path: Path) -> None:
    out = tmp_path / "mapped.safetensors"
    result = invoke(
        [*extract_args(setup["model"], setup["pairs"], out), "--device-map", str(setup["split"])]
    )
    assert result.exit_code == 0, result.output
    mapped, whole = SteeringVector.load(out), SteeringVector.load(setup["vector"])
    assert mapped.directions.keys() == whole.directions.keys()
    for layer, direction in whole.directions.items():
        assert (mapped.directions[layer] - direction).abs().max() < 1e-5


def test_generate_with_a_split_map_gives_the_same_text(setup, tmp_path: Path) -> None:
    texts = []
    for extra in ([], ["--device-map", str(setup["split"])], ["--device-map", "auto"]):
        out = tmp_path / f"gen{len(texts)}.jsonl"
        result = invoke([*commands(setup, out)["generate"], *extra])
        assert result.exit_code == 0, result.output
        texts.append([json.loads(line)["text"] for line in out.read_text().splitlines()])
    assert texts[1] == texts[0] and texts[2] == texts[0]


def test_fold_refuses_offloaded_weights(setup, tmp_path: Path) -> None:
    out = tmp_path / "folded"
    result = invoke([*commands(setup, out)["fold"], "--device-map", str(setup["split"])])
    assert_one_line_error(result, "--device-map offloads", "folding edits every weight")
    assert not out.exists()


@pytest.mark.parametrize("command", ["diff", "dataset qa"])
def test_a_split_map_writes_the_same_file(command: str, setup, tmp_path: Path) -> None:
    suffix = ".safetensors" if command == "diff" else ".jsonl"
    outputs = [tmp_path / f"whole{suffix}", tmp_path / f"mapped{suffix}"]
    for out, extra in zip(outputs, ([], ["--device-map", str(setup["split"])]), strict=True):
        result = invoke([*commands(setup, out)[command], *extra])
        assert result.exit_code == 0, result.output
    if command == "diff":
        whole, mapped = (SteeringVector.load(path) for path in outputs)
        for layer, direction in whole.directions.items():
            assert (mapped.directions[layer] - direction).abs().max() < 1e-5
    else:
        assert outputs[1].read_text() == outputs[0].read_text()
