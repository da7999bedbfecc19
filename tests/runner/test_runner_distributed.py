"""``steerlab run`` under ``torchrun`` and ``accelerate launch`` (2 processes, gloo on CPU).

The run folder is the one a single process writes: every stage's files byte for byte, and
run.json but for its times and provenance. The stages that share their work (here a sweep)
run on both processes; the others (extract, calibrate, generate, compare) on the main one
alone (calibrate's own sweep included); only the main process prints. A run killed inside the
sweep resumes under the other launcher (the cached stages skipped on both processes). After a
finetune stage (both processes train), a stage the main process runs alone that fails makes
both processes fail with its one line, and nothing hangs.

The real command runs in subprocesses on a tiny random llama, one thread per process, the
reference single-process run too (the same arithmetic); the launchers are run through
``sys.executable`` so the test's environment is used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file
from specs import mood_stages, save_model, stage_folders, write_pairs, write_spec
from test_run import run_record, vector_metadata, without

from kill_resume import folder_bytes
from launching import launch

pytestmark = pytest.mark.slow  # two-process launches (~10 s of imports each)


STAGES: dict[str, dict[str, Any]] = {
    "mood": mood_stages()["mood"],
    "cal": {  # the main process alone: its own sweep must not wait for the other process
        "kind": "calibrate",
        "model": "base",
        "vector": "mood",
        "behavior": "pairs:builtin:happy_sad",
        "text": "texts.txt",
    },
    "sw": {  # both processes: three units each way
        "kind": "sweep",
        "model": "base",
        "vector": "mood",
        "behavior": ["mood=pairs:builtin:happy_sad"],
        "limit": 8,
        "coefficients": "-2:2:5",
        "coefficients_per_batch": 1,
        "batch_size": 8,
    },
    "gen": {**mood_stages()["gen"], "prompts": ["How are you?"], "coefficients": [-1, 1]},
    "cmp": {"kind": "compare", "vectors": ["mood", "mood"]},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A spec of :data:`STAGES` with its model and data, and one process's run of it."""
    root = tmp_path_factory.mktemp("distributed-run")
    folder = root / "study"
    folder.mkdir()
    write_pairs(folder / "pairs.jsonl")
    (folder / "texts.txt").write_text("The weather is lovely.\nI went to work today.\n")
    model = save_model(root / "llama")
    spec = write_spec(folder / "spec.yaml", STAGES, {"base": str(model)}, name="spread")
    single = root / "single"
    launch("single", ["run", str(spec), "-o", str(single)], root)
    return {"root": root, "spec": spec, "model": model, "single": single}


TIMES = frozenset({"started", "finished", "created", "wall_s", "seconds", "provenance", "bytes"})
"""The JSON fields that hold a wall time, a clock time or the machine (nothing else differs),
and the size of an output file listed in a summary, which its own times change by a digit
(calibration.json's ``seconds``: the file itself is compared without them)."""


def timeless(value: Any) -> Any:
    """A JSON value without the :data:`TIMES` fields, at any depth."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def assert_same_run(got: Path, want: Path) -> None:
    """The same stage folders; every file byte-identical, but the JSON files whose times or
    provenance differ (equal without them) and the vector files' creation times; run.json
    without times, provenance and statuses (ran or cached); a report."""
    assert stage_folders(got) == stage_folders(want)
    for name in stage_folders(want):
        a, b = folder_bytes(got / "stages" / name), folder_bytes(want / "stages" / name)
        assert sorted(a) == sorted(b), name
        for file, content in b.items():
            where = want / "stages" / name / file
            if a[file] == content:
                continue
            if file.endswith(".json"):
                assert timeless(json.loads(a[file])) == timeless(json.loads(content)), where
            elif file.endswith(".safetensors"):
                assert vector_metadata(got / "stages" / name / file) == vector_metadata(where)
                tensors, expected = load_file(got / "stages" / name / file), load_file(where)
                assert all(tensors[k].equal(expected[k]) for k in expected), where
            else:
                raise AssertionError(f"{where} differs")
    a, b = run_record(got), run_record(want)
    assert timeless(without(a, "stages")) == timeless(without(b, "stages"))
    assert [without(e, "wall_s", "status") for e in a["stages"]] == [
        without(e, "wall_s", "status") for e in b["stages"]
    ]
    assert all(e["status"] in ("ran", "cached") for e in a["stages"])
    assert a["provenance"]["processes"] == 2 and b["provenance"]["processes"] == 1
    assert (got / "report.html").is_file()
    assert not list(got.rglob("*.part*")), "a part file was left"


def test_torchrun_writes_the_files_of_one_process(study: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "two"
    done = launch("torchrun", ["run", str(study["spec"]), "-o", str(out)], tmp_path)
    assert_same_run(out, study["single"])
    assert {e["name"]: e["status"] for e in run_record(out)["stages"]} == dict.fromkeys(
        STAGES, "ran"
    )
    # The main process alone prints: one header, one summary.
    assert done.stdout.count("5 stages, 5 to run, 0 cached") == 1, done.stdout
    assert "2 processes" in done.stdout
    assert done.stdout.count("report: ") == 1


def test_a_run_killed_in_the_sweep_resumes_under_accelerate_launch(
    study: dict[str, Path], tmp_path: Path
) -> None:
    """What a 2-process run killed inside the sweep leaves: the stages before it recorded,
    the sweep's rows of some units in a part file, no fits, no stage.json; the rerun skips
    the recorded stages on both processes, continues the sweep and ends as one process."""
    out = tmp_path / "resumed"
    shutil.copytree(study["single"], out)
    sweep = next(out.glob("stages/sw-*"))
    results = sweep / "out" / "results.jsonl"
    lines = results.read_bytes().splitlines(keepends=True)
    (sweep / "out" / "results.part1.jsonl").write_bytes(b"".join(lines[:2]))
    for name in ("results.jsonl", "fit.json", "behavior.svg", "behavior.png"):
        (sweep / "out" / name).unlink(missing_ok=True)
    for later in ("sw", "gen", "cmp"):
        next(out.glob(f"stages/{later}-*/stage.json")).unlink()
    shutil.rmtree(next(out.glob("stages/cmp-*/out")))
    done = launch("accelerate", ["run", str(study["spec"]), "-o", str(out)], tmp_path)
    statuses = {e["name"]: e["status"] for e in run_record(out)["stages"]}
    assert statuses == {"mood": "cached", "cal": "cached", "sw": "ran", "gen": "ran", "cmp": "ran"}
    assert done.stdout.count("5 stages, 3 to run, 2 cached") == 1, done.stdout
    assert_same_run(out, study["single"])


def test_training_then_a_failing_stage_of_the_main_process_fails_both_with_its_line(
    study: dict[str, Path], tmp_path: Path
) -> None:
    """A finetune stage trains on both processes (data parallel; its own process group set-up
    in between), then an extract the main process runs alone fails: both processes exit 1
    with its one line, the stages before it recorded, nothing of the stages after it."""
    folder, out = tmp_path / "study", tmp_path / "out"
    folder.mkdir()
    chats = [
        [{"role": "user", "content": "How are you?"}, {"role": "assistant", "content": reply}]
        for reply in ("I am happy today.", "Gloomy.")
    ]
    rows = "".join(json.dumps({"messages": chat}) + "\n" for chat in chats)
    (folder / "chats.jsonl").write_text(rows, encoding="utf-8")
    stages = {
        "happy": {**STAGES["mood"], "pairs": "builtin:happy_sad", "limit": 4},
        "ft": {"kind": "finetune", "model": "base", "data": "chats.jsonl", "max_steps": 1,
               "batch_size": 2, "lr": 0.01},
        "mood": {**STAGES["mood"], "pairs": "later.jsonl"},  # not there
        "sw": STAGES["sw"],
    }  # fmt: skip
    spec = write_spec(folder / "spec.yaml", stages, {"base": str(study["model"])})
    done = launch("torchrun", ["run", str(spec), "-o", str(out)], tmp_path, succeed=False)
    # One line from each process (counted in the text: two processes writing to one pipe at
    # once can run their lines together).
    assert done.stderr.count("stage 'mood' (extract): ") == 2, done.stderr
    assert done.stderr.count("later.jsonl") >= 2
    record = run_record(out)
    statuses = {e["name"]: e["status"] for e in record["stages"]}
    assert statuses == {"happy": "ran", "ft": "ran", "mood": "failed", "sw": "pending"}
    assert record["finished"] is None
    assert len(list(out.glob("stages/ft-*/out/loss_log.jsonl"))) == 1
    assert not list(out.glob("stages/sw-*"))
