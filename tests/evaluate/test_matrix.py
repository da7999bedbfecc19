"""The steering matrix on a tiny model: conditions, scoring, files, resume, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import steerlab as sl
from conftest import make_model
from steerlab.cli import app
from steerlab.errors import SpecError
from steerlab.evaluate.matrix import AnswerChangeScorer, MatrixSettings, steering_matrix

PROMPTS = ["What is the capital of France?", "Tell me about your day."]
SMALL = MatrixSettings(
    normalized_coefficients=(0.1, 0.5), raw_coefficients=(1.0,), max_new_tokens=4, batch_size=8
)


@pytest.fixture
def setup():
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    pairs = [sl.ContrastPair("happy", "sad"), sl.ContrastPair("good day", "bad day")]
    vector = sl.extract(model, tokenizer, pairs, "mean_diff", progress=False)
    return model, tokenizer, vector


def test_answer_change_scorer():
    scorer = AnswerChangeScorer({"q": "Paris is the capital of France."})
    assert scorer.score("q", "The capital of France is Paris.") == -1
    assert scorer.score("q", "Berlin, obviously.") == 1
    assert scorer.score("q", "") == -1


def test_matrix_conditions_and_files(setup, tmp_path):
    model, tokenizer, vector = setup
    result = steering_matrix(
        model,
        tokenizer,
        {"v": vector, "w": -vector},
        PROMPTS,
        SMALL,
        output_dir=tmp_path,
        progress=False,
    )
    conditions = {r.condition for r in result.rows}
    # baseline + per vector: 2 layer modes x (2 normalised + 1 raw) x (add, subtract) + 2 ablate
    assert len(conditions) == 1 + 2 * (2 * 3 * 2 + 2)
    assert len(result.rows) == len(conditions) * len(PROMPTS)
    baseline = {r.prompt: r.response for r in result.rows if r.operator == "none"}
    assert all(r.score == -1 for r in result.rows if r.operator == "none")
    assert all(r.perplexity > 0 for r in result.rows)
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "results.jsonl",
        "summary.csv",
        "examples.md",
        "examples.html",
        "rates.png",
        "rates.svg",
        "generations.jsonl",
    } <= names
    assert "unsteered" in (tmp_path / "examples.md").read_text()
    assert (tmp_path / "summary.csv").read_text().startswith("vector,operator")
    # Coefficient 0 would equal the baseline; ablation with a 0 direction is refused elsewhere.
    adds = [r for r in result.rows if r.operator == "add" and r.normalization == "normalized"]
    assert any(r.response != baseline[r.prompt] for r in adds)
    before = (tmp_path / "results.jsonl").read_bytes()
    again = steering_matrix(
        model,
        tokenizer,
        {"v": vector, "w": -vector},
        PROMPTS,
        SMALL,
        output_dir=tmp_path,
        progress=False,
    )
    assert (tmp_path / "results.jsonl").read_bytes() == before
    assert len(again.rows) == len(result.rows)


def test_subtract_equals_add_of_the_negation(setup):
    model, tokenizer, vector = setup
    settings = MatrixSettings(
        normalized_coefficients=(0.5,),
        raw_coefficients=(1.0,),
        layer_modes=("all",),
        normalizations=("raw",),
        ablate=False,
        max_new_tokens=4,
    )
    result = steering_matrix(
        model, tokenizer, {"v": vector, "neg": -vector}, PROMPTS, settings, progress=False
    )
    text = {(r.vector, r.operator, r.prompt): r.response for r in result.rows}
    for prompt in PROMPTS:
        assert text[("v", "subtract", prompt)] == text[("neg", "add", prompt)]


def test_matrix_errors(setup):
    model, tokenizer, vector = setup
    with pytest.raises(SpecError):
        MatrixSettings(raw_coefficients=(0.0,))
    with pytest.raises(SpecError):
        MatrixSettings(layer_modes=("middle",))
    with pytest.raises(SpecError, match="out of range"):
        steering_matrix(
            model, tokenizer, {"v": vector}, PROMPTS, MatrixSettings(single_layer=9), progress=False
        )
    with pytest.raises(SpecError):
        steering_matrix(model, tokenizer, {}, PROMPTS, progress=False)


def test_matrix_cli(setup, tmp_path):
    model, tokenizer, vector = setup
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    path = vector.save(tmp_path / "v.safetensors")
    questions = tmp_path / "q.txt"
    questions.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "matrix"
    result = CliRunner().invoke(
        app,
        [
            "matrix",
            "--model",
            str(folder),
            "--vectors",
            f"mine={path}",
            "--prompts",
            str(questions),
            "-o",
            str(out),
            "--normalized-coefficients",
            "0.1",
            "--raw-coefficients",
            "1",
            "--max-new-tokens",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["vector"] for r in rows} == {"-", "mine"}
    bad = CliRunner().invoke(
        app,
        [
            "matrix",
            "--model",
            str(folder),
            "--vectors",
            str(path),
            "--prompts",
            str(questions),
            "-o",
            str(tmp_path / "bad"),
            "--raw-coefficients",
            "0",
        ],
    )
    assert bad.exit_code == 1 and "raw_coefficients" in bad.output


def test_resume_refuses_other_generation_settings_but_takes_a_wider_grid(setup, tmp_path):
    model, tokenizer, vector = setup
    small = MatrixSettings(
        normalized_coefficients=(0.1,), raw_coefficients=(1.0,), layer_modes=("single",),
        ablate=False, max_new_tokens=3, batch_size=8,
    )  # fmt: skip

    def run(vectors, settings):
        return steering_matrix(
            model, tokenizer, vectors, PROMPTS[:1], settings, output_dir=tmp_path, progress=False
        )

    first = run({"v": vector}, small)
    assert json.loads((tmp_path / "matrix.json").read_text())["max_new_tokens"] == 3
    wider = MatrixSettings(**{**small.__dict__, "normalized_coefficients": (0.1, 0.3)})
    again = run({"v": vector}, wider)
    reused = {(r.condition, r.prompt): r.response for r in first.rows}
    assert all(reused[(r.condition, r.prompt)] == r.response for r in again.rows if
               (r.condition, r.prompt) in reused)  # fmt: skip
    longer = MatrixSettings(**{**small.__dict__, "max_new_tokens": 5})
    reseeded = MatrixSettings(**{**small.__dict__, "seed": 1})
    for vectors, settings, field in (
        ({"v": vector}, longer, "max_new_tokens"),
        ({"v": vector}, reseeded, "seed"),
        ({"v": -vector}, small, "vectors"),
    ):
        with pytest.raises(SpecError, match=field):
            run(vectors, settings)


def test_matrix_settings_are_checked_with_one_line_each():
    with pytest.raises(SpecError, match=r"raw_coefficients must be a finite number > 0, got nan"):
        MatrixSettings(raw_coefficients=(1.0, float("nan")))
    with pytest.raises(SpecError, match="normalized_coefficients is empty"):
        MatrixSettings(normalized_coefficients=())
    with pytest.raises(SpecError, match="layer_modes 'middle' is not one of single, all"):
        MatrixSettings(layer_modes=("single", "middle"))
    with pytest.raises(SpecError, match="max_new_tokens must be a positive integer, got 0"):
        MatrixSettings(max_new_tokens=0)
    with pytest.raises(SpecError, match="batch_size must be a positive integer, got True"):
        MatrixSettings(batch_size=True)
    with pytest.raises(SpecError, match="ablate must be True or False"):
        MatrixSettings(ablate=1)  # type: ignore[arg-type]
    assert MatrixSettings(raw_coefficients=[2, 4]).raw_coefficients == (2.0, 4.0)  # type: ignore[arg-type]
