"""Two processes (gloo on CPU) give the same files as one: ``sweep``, ``eval`` and ``matrix``
under ``torchrun`` and ``accelerate launch``, and a rerun after a lost part redoes only that.

The slow tests run the real command in subprocesses on a tiny random llama, with one thread
per process; the launchers are run through ``sys.executable`` so the test's environment is
used. The fast one runs a sweep in this process over parts a launched run left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import make_model, save_tiny_llama
from kill_resume import folder_bytes
from launching import launch
from steerlab.cli import app
from steerlab.data.evalsets import ABItem
from steerlab.evaluate.sweep import RESULTS, sweep
from steerlab.evaluate.tasks import ABBehaviorTask
from steerlab.models import model_identity
from steerlab.vector import SteeringVector, VectorMetadata

slow = pytest.mark.slow  # two-process launches (~10 s of imports each)


def without_provenance(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("provenance", None)
    return data


def assert_same_folders(got: Path, want: Path, settings: str) -> None:
    """Every file byte-identical (no part file left), the settings file minus provenance."""
    got_files, want_files = folder_bytes(got), folder_bytes(want)
    assert sorted(got_files) == sorted(want_files)
    for name, content in want_files.items():
        if name == settings:
            assert without_provenance(got / name) == without_provenance(want / name)
        else:
            assert got_files[name] == content, f"{name} differs"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama folder, a vector from it, A/B, multiple-choice, facts and prompt files."""
    root = tmp_path_factory.mktemp("distributed-inputs")
    model, vector = save_tiny_llama(root, "model", "v.safetensors")
    ab = root / "ab.json"
    ab.write_text(
        json.dumps(
            [
                {
                    "question": f"Question {i}: is the sky blue?\n\nChoices:\n (A) yes\n (B) no",
                    "answer_matching_behavior": "(A)" if i % 2 else "(B)",
                    "answer_not_matching_behavior": "(B)" if i % 2 else "(A)",
                }
                for i in range(8)
            ]
        ),
        encoding="utf-8",
    )
    mmlu = root / "maths_test.csv"
    mmlu.write_text(
        "".join(f"What is {i}+{i}?,{2 * i},{i},{3 * i},{i + 1},A\n" for i in range(8)),
        encoding="utf-8",
    )
    facts = root / "facts.csv"
    facts.write_text(
        "statement,label\n" + "".join(f"Fact number {i} holds.,{i % 2}\n" for i in range(16)),
        encoding="utf-8",
    )
    prompts = root / "prompts.txt"
    prompts.write_text(
        "".join(f"What is the capital of country {i}?\n" for i in range(3)), encoding="utf-8"
    )
    (root / "nodata").mkdir()
    return {
        "model": model,
        "vector": vector,
        "ab": ab,
        "mmlu": mmlu,
        "facts": facts,
        "prompts": prompts,
        "nodata": root / "nodata",
    }


def sweep_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return [
        "sweep",
        "--model",
        str(inputs["model"]),
        "--vector",
        str(inputs["vector"]),
        "--behavior",
        f"caa:{inputs['ab']}",
        "--helpfulness",
        f"mmlu:{inputs['mmlu']}",
        "--coefficients=-2:2:5",
        "--coefficients-per-batch",
        "1",
        "--batch-size",
        "8",
        "-o",
        str(out),
    ]


def eval_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return [
        "eval",
        "--models",
        ",".join(f"{label}={inputs['model']}" for label in ("m1", "m2")),
        "--steered",
        f"steered={inputs['model']}:{inputs['vector']}:2",
        "--facts",
        str(inputs["facts"]),
        "--data-dir",
        str(inputs["nodata"]),
        "--limit",
        "8",
        "--bootstrap",
        "50",
        "-o",
        str(out),
    ]


def matrix_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return [
        "matrix",
        "--model",
        str(inputs["model"]),
        "--vectors",
        f"v={inputs['vector']}",
        "--prompts",
        str(inputs["prompts"]),
        "--normalized-coefficients",
        "0.4",
        "--raw-coefficients",
        "2",
        "--max-new-tokens",
        "4",
        "-o",
        str(out),
    ]


@pytest.fixture(scope="module")
def single_sweep(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single-sweep") / "out"
    launch("single", sweep_args(inputs, out), out.parent)
    return out


@slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_a_two_process_sweep_writes_the_files_of_one_process(
    launcher: str, inputs: dict[str, Path], single_sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = launch(launcher, sweep_args(inputs, out), tmp_path)
    assert_same_folders(out, single_sweep, "sweep.json")
    assert done.stdout.count("wrote ") == 1  # the main process prints, the other is quiet


@slow
def test_a_rerun_redoes_only_the_units_a_lost_process_did_not_finish(
    inputs: dict[str, Path], single_sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # What two processes leave when one is killed: each part holds the units it finished,
    # and nobody finished coefficient 1. One kept row is marked (value 0.5): a rerun that
    # redid it would write the true value back.
    rows = (single_sweep / "results.jsonl").read_text(encoding="utf-8").splitlines()
    marked = json.dumps({**json.loads(rows[0]), "value": 0.5}, sort_keys=True)
    assert json.loads(rows[0])["coefficient"] != 1.0 and marked != rows[0]
    want = [marked, *rows[1:]]
    kept = [r for r in want if json.loads(r)["coefficient"] != 1.0]
    (out / "results.part0.jsonl").write_text("\n".join(kept[::2]) + "\n", encoding="utf-8")
    (out / "results.part1.jsonl").write_text("\n".join(kept[1::2]) + "\n", encoding="utf-8")
    (out / "sweep.json").write_bytes((single_sweep / "sweep.json").read_bytes())
    launch("torchrun", sweep_args(inputs, out), tmp_path)
    assert (out / "results.jsonl").read_text(encoding="utf-8").splitlines() == want
    assert not list(out.glob("*.part*")), "part files left behind"
    assert (out / "fit.json").is_file()


@pytest.fixture(scope="module")
def single_eval(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single-eval") / "out"
    launch("single", eval_args(inputs, out), out.parent)
    return out


@slow
def test_a_two_process_eval_writes_the_files_of_one_process(
    inputs: dict[str, Path], single_eval: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    launch("torchrun", eval_args(inputs, out), tmp_path)
    assert_same_folders(out, single_eval, "suite.json")


@slow
def test_an_eval_rerun_keeps_the_models_a_lost_process_finished(
    inputs: dict[str, Path], single_eval: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # Rank 1 finished m2 (its rows marked: value 0.5) and was killed; rank 0 finished nothing.
    rows = (single_eval / "results.jsonl").read_text(encoding="utf-8").splitlines()
    marked = [
        json.dumps({**json.loads(r), "value": 0.5}, sort_keys=True)
        if json.loads(r)["model"] == "m2"
        else r
        for r in rows
    ]
    assert marked != rows
    m2 = [r for r in marked if json.loads(r)["model"] == "m2"]
    (out / "results.part1.jsonl").write_text("\n".join(m2) + "\n", encoding="utf-8")
    (out / "suite.json").write_bytes((single_eval / "suite.json").read_bytes())
    launch("torchrun", eval_args(inputs, out), tmp_path)
    got = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r) for r in got] == [json.loads(r) for r in marked]
    assert not list(out.glob("*.part*")), "part files left behind"


@slow
def test_a_two_process_matrix_writes_the_files_of_one_process(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    single, double = tmp_path / "single", tmp_path / "double"
    launch("single", matrix_args(inputs, single), tmp_path)
    launch("accelerate", matrix_args(inputs, double), tmp_path)
    assert_same_folders(double, single, "matrix.json")


@slow
def test_a_matrix_rerun_keeps_what_each_lost_process_generated(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    single, out = tmp_path / "single", tmp_path / "out"
    launch("single", matrix_args(inputs, single), tmp_path)
    out.mkdir()
    # Two processes killed part-way: each part holds some conditions' outputs; the last one
    # kept is marked (a rerun that regenerated it would write the real output back).
    lines = (single / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    steered = [i for i, line in enumerate(lines) if json.loads(line)["key"][0] == "v"]
    marked = [
        json.dumps({**json.loads(line), "response": "MARKED"}) if i == steered[0] else line
        for i, line in enumerate(lines)
    ]
    kept = marked[: len(marked) // 2]
    (out / "generations.part0.jsonl").write_text("\n".join(kept[::2]) + "\n", encoding="utf-8")
    (out / "generations.part1.jsonl").write_text("\n".join(kept[1::2]) + "\n", encoding="utf-8")
    (out / "matrix.json").write_bytes((single / "matrix.json").read_bytes())
    launch("torchrun", matrix_args(inputs, out), tmp_path)
    got = (out / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r) for r in got] == [json.loads(r) for r in marked]
    assert not list(out.glob("*.part*")), "part files left behind"


@slow
def test_a_bad_input_fails_every_process_with_one_line_and_none_hangs(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"format": "steerlab.sweep/1"}), encoding="utf-8")
    done = launch("torchrun", sweep_args(inputs, out), tmp_path, succeed=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) >= 1 and all("other settings" in line for line in errors), done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]


def test_one_process_takes_up_the_parts_of_a_launched_run_and_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    generator = torch.Generator().manual_seed(3)
    directions = {i: torch.randn(32, generator=generator) for i in range(3)}
    vector = SteeringVector(directions, VectorMetadata.for_model(model_identity(model), "test"))
    items = tuple(
        ABItem(f"Question {i}: is it true?\n\nChoices:\n (A) yes\n (B) no", "A", "B", "(A)", "(B)")
        for i in range(3)
    )
    settings = {"coefficients_per_batch": 1, "progress": False, "estimates": False}

    def run(out: Path) -> None:
        sweep(model, tokenizer, vector, [-1.0, 0.0, 1.0], [ABBehaviorTask("ab", items)],
              output_dir=out, write_plots=False, **settings)  # fmt: skip

    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    run(fresh)
    assert sorted(p.name for p in fresh.iterdir()) == ["fit.json", "results.jsonl", "sweep.json"]
    # Rank 0 finished coefficient -1 (its row marked), rank 1 was killed before 0 and 1.
    lines = (fresh / RESULTS).read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert first["coefficient"] == -1.0
    marked = json.dumps({**first, "value": 0.5}, sort_keys=True)
    resumed.mkdir()
    (resumed / "sweep.json").write_bytes((fresh / "sweep.json").read_bytes())
    (resumed / "results.part0.jsonl").write_text(marked + "\n", encoding="utf-8")
    run(resumed)
    got = (resumed / RESULTS).read_text(encoding="utf-8").splitlines()
    assert [json.loads(r) for r in got] == [json.loads(r) for r in [marked, *lines[1:]]]
    assert sorted(p.name for p in resumed.iterdir()) == ["fit.json", "results.jsonl", "sweep.json"]


@pytest.mark.parametrize("command", ["sweep", "eval", "matrix"])
def test_a_device_map_is_refused_when_processes_share_a_machine(
    command: str, tmp_path: Path
) -> None:
    common = ["-o", str(tmp_path / "out"), "--device-map", "auto"]
    args = {
        "sweep": ["sweep", "--vector", "v.safetensors", "--perplexity", "t.txt"],
        "eval": ["eval", "--models", "default"],
        "matrix": ["matrix", "--vectors", "v.safetensors", "--prompts", "p.txt"],
    }[command]
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    result = CliRunner().invoke(app, [*args, *common], env=env)
    assert result.exit_code == 1
    assert "--device-map with 2 processes on this machine" in result.output
    assert not (tmp_path / "out").exists()
