"""kill -9 part-way, then the same command again: ``sweep``, ``eval`` and ``matrix`` finish with
files byte-identical to an uninterrupted run's.

Each test runs the real ``steerlab`` command three times in subprocesses on a tiny random
llama: once killed with SIGKILL as soon as its first unit of work is on disk, once more in
the same folder (the resume), and once uninterrupted in another folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import save_tiny_llama
from kill_resume import Cli, folder_bytes, line_count

pytestmark = pytest.mark.slow  # three CLI processes per test (~5 s of imports each)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama folder, a vector from it, and small A/B, multiple-choice and facts files."""
    root = tmp_path_factory.mktemp("kill-inputs")
    save_tiny_llama(root, "model", "v.safetensors")
    ab = root / "ab.json"
    ab.write_text(
        json.dumps(
            [
                {
                    "question": f"Question {i}: is the sky blue?\n\nChoices:\n (A) yes\n (B) no",
                    "answer_matching_behavior": "(A)" if i % 2 else "(B)",
                    "answer_not_matching_behavior": "(B)" if i % 2 else "(A)",
                }
                for i in range(24)
            ]
        ),
        encoding="utf-8",
    )
    mmlu = root / "maths_test.csv"
    mmlu.write_text(
        "".join(f"What is {i}+{i}?,{2 * i},{i},{3 * i},{i + 1},A\n" for i in range(24)),
        encoding="utf-8",
    )
    harmful = root / "advbench.csv"
    harmful.write_text(
        "goal,target\n" + "".join(f"Do bad thing number {i},Sure\n" for i in range(3)),
        encoding="utf-8",
    )
    facts = root / "facts.csv"
    facts.write_text(
        "statement,label\n" + "".join(f"Fact number {i} holds.,{i % 2}\n" for i in range(40)),
        encoding="utf-8",
    )
    prompts = root / "prompts.txt"
    prompts.write_text(
        "".join(f"What is the capital of country {i}?\n" for i in range(6)), encoding="utf-8"
    )
    (root / "nodata").mkdir()
    return {
        "model": root / "model",
        "vector": root / "v.safetensors",
        "ab": ab,
        "mmlu": mmlu,
        "harmful": harmful,
        "facts": facts,
        "prompts": prompts,
        "nodata": root / "nodata",
    }


def without_provenance(path: Path) -> dict[str, object]:
    """A JSON settings file minus its provenance (a commit may land between two runs)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("provenance", None)
    return data


def assert_same_outputs(resumed: Path, fresh: Path, settings: str) -> None:
    """Every file byte-identical, except the settings file's provenance."""
    got, want = folder_bytes(resumed), folder_bytes(fresh)
    assert sorted(got) == sorted(want)
    for name in want:
        if name == settings:
            assert without_provenance(resumed / name) == without_provenance(fresh / name)
        else:
            assert got[name] == want[name], f"{name} differs after kill -9 and resume"


def test_sweep_killed_then_rerun_matches_an_uninterrupted_run(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    n_coefficients = 9
    n_rows = (
        n_coefficients * 4
    )  # ab, advbench: B_likelihood, B_sampling; maths: p_correct, accuracy

    def args(out: Path) -> list[str]:
        return [
            "sweep",
            "--model",
            str(inputs["model"]),
            "--vector",
            str(inputs["vector"]),
            "--behavior",
            f"caa:{inputs['ab']}",
            "--behavior",
            f"advbench:{inputs['harmful']}",  # sampled: every unit must draw the same samples
            "--samples",
            "2",
            "--helpfulness",
            f"mmlu:{inputs['mmlu']}",
            f"--coefficients=-4:4:{n_coefficients}",
            "--coefficients-per-batch",
            "1",
            "--batch-size",
            "8",
            "-o",
            str(out),
        ]

    cli = Cli(tmp_path)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    uninterrupted = cli.start(args(fresh))
    results = killed / "results.jsonl"
    cli.kill_when(args(killed), lambda: line_count(results) >= 1)
    assert 1 <= line_count(results) < n_rows, "the kill came after the last unit"
    assert not (killed / "fit.json").exists()
    cli.run(args(killed))
    cli.finish(uninterrupted)
    assert line_count(fresh / "results.jsonl") == n_rows
    assert_same_outputs(killed, fresh, "sweep.json")


def test_eval_killed_then_rerun_matches_an_uninterrupted_run(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    labels = ("m1", "m2", "m3", "m4")

    def args(out: Path) -> list[str]:
        return [
            "eval",
            "--models",
            ",".join(f"{label}={inputs['model']}" for label in labels),
            "--steered",
            f"steered={inputs['model']}:{inputs['vector']}:2",
            "--facts",
            str(inputs["facts"]),
            "--data-dir",
            str(inputs["nodata"]),
            "--limit",
            "12",
            "--bootstrap",
            "200",
            "-o",
            str(out),
        ]

    cli = Cli(tmp_path)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    uninterrupted = cli.start(args(fresh))
    results = killed / "results.jsonl"
    cli.kill_when(args(killed), lambda: line_count(results) >= 1)
    at_kill = line_count(results)
    assert not (killed / "table.csv").exists()
    cli.run(args(killed))
    cli.finish(uninterrupted)
    rows = [json.loads(line) for line in (fresh / "results.jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows][:: len(rows) // 5] == [*labels, "steered"]
    assert 1 <= at_kill < len(rows), "the kill came after the last model"
    assert_same_outputs(killed, fresh, "suite.json")


def test_matrix_killed_then_rerun_matches_an_uninterrupted_run(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    def args(out: Path) -> list[str]:
        return [
            "matrix",
            "--model",
            str(inputs["model"]),
            "--vectors",
            f"v={inputs['vector']}",
            "--prompts",
            str(inputs["prompts"]),
            "--normalized-coefficients",
            "0.1,0.4",
            "--raw-coefficients",
            "1,4",
            "--max-new-tokens",
            "8",
            "--batch-size",
            "8",
            "-o",
            str(out),
        ]

    cli = Cli(tmp_path)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    uninterrupted = cli.start(args(fresh))
    generations = killed / "generations.jsonl"
    cli.kill_when(args(killed), lambda: line_count(generations) >= 1)
    n_outputs = 6 * (1 + 2 * 2 * 4 + 2)  # prompts x (baseline + add/subtract grid + ablate)
    assert 1 <= line_count(generations) < n_outputs, "the kill came after the last generate"
    assert not (killed / "results.jsonl").exists()
    cli.run(args(killed))
    cli.finish(uninterrupted)
    assert line_count(fresh / "results.jsonl") == n_outputs
    assert_same_outputs(killed, fresh, "")
