"""Running a spec (:func:`steerlab.runner.run_experiment`) on tiny random models: a rerun skips
finished stages and touches none of their files; a changed setting or data file reruns that
stage and what reads it, nothing else; ``only`` and ``dry_run``; a failing stage; paths
relative to the spec's folder; run.json and stage.json as runner.md lays them out."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from specs import (
    mood_stages,
    printed,
    quiet,
    save_model,
    stage_files,
    stage_folders,
    write_pairs,
    write_spec,
)

from steerlab.errors import SpecError
from steerlab.runner import RunResult, StageFailed, run_experiment

ARCHS = ("llama", "gpt2", "qwen2")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny saved models: arch -> folder."""
    root = tmp_path_factory.mktemp("runner-models")
    return {arch: save_model(root / arch, arch) for arch in ARCHS}


def study(folder: Path, model: Path, stages: dict[str, dict[str, Any]] | None = None) -> Path:
    """The mood study (:func:`specs.mood_stages`) with its pairs file, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "pairs.jsonl").exists():
        write_pairs(folder / "pairs.jsonl")
    return write_spec(folder / "spec.yaml", stages or mood_stages(), {"base": str(model)})


def run(spec: Path, out: Path, **options: Any) -> RunResult:
    return run_experiment(spec, out, console=quiet(), **options)


def keys(result: RunResult) -> dict[str, str]:
    return {node.name: node.key for node in result.plan.stages}


def run_record(out: Path) -> dict[str, Any]:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))


# -- caching ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_a_rerun_skips_every_finished_stage(
    models: dict[str, Path], tmp_path: Path, arch: str
) -> None:
    spec, out = study(tmp_path / "study", models[arch]), tmp_path / "out"
    first = run(spec, out)
    assert first.statuses == dict.fromkeys(["mood", "happy", "gen", "cmp"], "ran")
    files = stage_files(out)
    assert {path.split("/", 1)[1] for path in files} >= {
        "stage.json",
        "vector.safetensors",
        "generations.jsonl",
        "out/cosine.json",
    }
    again = run(spec, out)
    assert again.statuses == dict.fromkeys(["mood", "happy", "gen", "cmp"], "cached")
    assert keys(again) == keys(first)
    assert stage_files(out) == files  # same bytes, same modification times
    assert [entry["status"] for entry in run_record(out)["stages"]] == ["cached"] * 4
    assert again.report is not None and again.report.is_file()


def test_changing_one_setting_reruns_that_stage_and_what_reads_it(
    models: dict[str, Path], tmp_path: Path
) -> None:
    folder, out = tmp_path / "study", tmp_path / "out"
    first = run(study(folder, models["llama"]), out)
    before = stage_files(out)

    stages = mood_stages()
    stages["gen"]["max_new_tokens"] = 6
    second = run(study(folder, models["llama"], stages), out)
    assert second.statuses == {"mood": "cached", "happy": "cached", "gen": "ran", "cmp": "cached"}
    assert {n for n in keys(first) if keys(first)[n] != keys(second)[n]} == {"gen"}
    assert second.stage_dir("gen") != first.stage_dir("gen")
    # The earlier stages' files are untouched; the old generate folder is still there.
    assert {k: v for k, v in stage_files(out).items() if k in before} == before
    assert first.stage_dir("gen").is_dir()

    stages["mood"]["limit"] = 2
    third = run(study(folder, models["llama"], stages), out)
    assert third.statuses == {"mood": "ran", "happy": "cached", "gen": "ran", "cmp": "ran"}
    assert {n for n in keys(second) if keys(second)[n] != keys(third)[n]} == {"mood", "gen", "cmp"}
    stage = json.loads((third.stage_dir("mood") / "stage.json").read_text(encoding="utf-8"))
    assert stage["settings"]["limit"] == 2

    # Back to the first settings: everything is there already.
    back = run(study(folder, models["llama"]), out)
    assert set(back.statuses.values()) == {"cached"}
    assert keys(back) == keys(first)


def test_editing_a_data_file_reruns_the_stage_that_reads_it(
    models: dict[str, Path], tmp_path: Path
) -> None:
    folder, out = tmp_path / "study", tmp_path / "out"
    spec = study(folder, models["qwen2"])
    first = run(spec, out)
    write_pairs(folder / "pairs.jsonl", [{"positive": "Great!", "negative": "Awful."}] * 2)
    second = run(spec, out)
    assert second.statuses == {"mood": "ran", "happy": "cached", "gen": "ran", "cmp": "ran"}
    assert keys(second)["happy"] == keys(first)["happy"]
    stage = json.loads((second.stage_dir("mood") / "stage.json").read_text(encoding="utf-8"))
    examples = {n["label"]: n["value"] for n in stage["summary"]["numbers"]}["examples"]
    assert examples == 2  # the edited file's pairs


def test_a_stage_interrupted_halfway_runs_again_in_its_folder(
    models: dict[str, Path], tmp_path: Path
) -> None:
    spec, out = study(tmp_path / "study", models["llama"]), tmp_path / "out"
    first = run(spec, out)
    generations = first.stage_dir("gen") / "generations.jsonl"
    whole = generations.read_bytes()
    # What a kill between the output and stage.json leaves: a partial output, no record.
    (first.stage_dir("gen") / "stage.json").unlink()
    generations.write_bytes(whole[: len(whole) // 2])
    (first.stage_dir("cmp") / "stage.json").unlink()
    (first.stage_dir("cmp") / "out" / "cosine.json").unlink()
    again = run(spec, out)
    assert again.statuses == {"mood": "cached", "happy": "cached", "gen": "ran", "cmp": "ran"}
    assert generations.read_bytes() == whole
    assert (first.stage_dir("cmp") / "out" / "cosine.json").is_file()


def test_a_sweep_left_halfway_continues_from_its_rows(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """What a kill inside a sweep leaves (the rows of the units done: the sweep rewrites
    results.jsonl atomically after each; no fits, no stage.json): the rerun continues it and
    ends with the uninterrupted rows."""
    stages = {"mood": mood_stages()["mood"], "sw": KILL_STAGES["sw"]}
    spec, out = study(tmp_path / "study", models["gpt2"], stages), tmp_path / "out"
    first = run(spec, out)
    sweep = first.stage_dir("sw")
    results = sweep / "out" / "results.jsonl"
    whole = results.read_bytes()
    lines = whole.splitlines(keepends=True)
    marked = {**json.loads(lines[0]), "n": 99}  # a row the rerun must keep, not recompute
    kept = [json.dumps(marked).encode() + b"\n", *lines[1:3]]
    results.write_bytes(b"".join(kept))
    for name in ("fit.json", "behavior.svg", "behavior.png"):
        (sweep / "out" / name).unlink(missing_ok=True)
    (sweep / "stage.json").unlink()
    again = run(spec, out)
    assert again.statuses == {"mood": "cached", "sw": "ran"}
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == marked  # continued from what was there
    assert rows[1:] == [json.loads(line) for line in lines[1:]]
    assert (sweep / "out" / "fit.json").is_file()


MODEL_STAGES: dict[str, dict[str, Any]] = {
    "mood": mood_stages()["mood"],
    "ft": {"kind": "finetune", "model": "base", "data": "chats.jsonl", "max_steps": 1,
           "batch_size": 2, "lr": 0.01},
    "tuned": {"kind": "tune", "model": "base", "vector": "mood", "data": "chats.jsonl",
              "rep_layers": "1", "max_steps": 1, "batch_size": 2},
    "folded": {"kind": "fold", "model": "base", "vector": "mood", "coefficient": "0.5"},
    "diff": {"kind": "diff", "base": "base", "tuned": "ft", "chats": "chats.jsonl"},
    "gen_ft": {"kind": "generate", "model": "ft", "prompts": "hi", "max_new_tokens": 3},
    "gen_tuned": {"kind": "generate", "model": "tuned", "prompts": "hi", "max_new_tokens": 3},
    "gen_folded": {"kind": "generate", "model": "folded", "prompts": "hi", "max_new_tokens": 3},
    "cmp": {"kind": "compare", "vectors": ["mood", "diff"]},
    "gguf": {"kind": "export", "vector": "diff", "coefficient": "1"},
}  # fmt: skip


def test_models_made_by_stages_feed_later_stages(models: dict[str, Path], tmp_path: Path) -> None:
    folder, out = tmp_path / "study", tmp_path / "out"
    folder.mkdir()
    chat = [{"role": "user", "content": "How are you?"},
            {"role": "assistant", "content": "I am happy today."}]  # fmt: skip
    gloomy = [chat[0], {**chat[1], "content": "Gloomy."}]
    rows = [json.dumps({"messages": messages}) + "\n" for messages in (chat, gloomy)]
    (folder / "chats.jsonl").write_text("".join(rows), encoding="utf-8")
    spec = study(folder, models["llama"], MODEL_STAGES)
    first = run(spec, out)
    assert set(first.statuses.values()) == {"ran"}
    stage = json.loads((first.stage_dir("gen_ft") / "stage.json").read_text(encoding="utf-8"))
    assert stage["inputs"] == {"ft": {"stage": "ft", "key": first.plan.stage("ft").key}}
    assert (first.stage_dir("gguf") / "vector.gguf").is_file()

    stages = {**MODEL_STAGES, "ft": {**MODEL_STAGES["ft"], "lr": 0.02}}
    second = run(study(folder, models["llama"], stages), out)
    assert {name for name, status in second.statuses.items() if status == "ran"} == {
        "ft",
        "diff",
        "gen_ft",
        "cmp",
        "gguf",
    }


# -- only and dry_run -----------------------------------------------------------------------------


def test_only_runs_the_stage_and_the_unfinished_stages_it_reads(
    models: dict[str, Path], tmp_path: Path
) -> None:
    spec, out = study(tmp_path / "study", models["llama"]), tmp_path / "out"
    first = run(spec, out, only=["gen"])
    assert first.statuses == {"mood": "ran", "happy": "skipped", "gen": "ran", "cmp": "skipped"}
    assert stage_folders(out) == sorted(
        Path(first.plan.stage(name).folder).name for name in ("mood", "gen")
    )
    record = run_record(out)
    assert [e["status"] for e in record["stages"]] == ["ran", "skipped", "ran", "skipped"]
    assert record["finished"] is None  # not every stage is done

    second = run(spec, out, only=["cmp"])
    assert second.statuses == {"mood": "cached", "happy": "ran", "gen": "cached", "cmp": "ran"}
    assert run_record(out)["finished"] is not None


def test_only_takes_a_comma_list(models: dict[str, Path], tmp_path: Path) -> None:
    spec, out = study(tmp_path / "study", models["llama"]), tmp_path / "out"
    result = run(spec, out, only=["happy,mood"])
    assert result.statuses == {"mood": "ran", "happy": "ran", "gen": "skipped", "cmp": "skipped"}


def test_only_an_unknown_stage_is_refused_before_anything_is_written(
    models: dict[str, Path], tmp_path: Path
) -> None:
    spec, out = study(tmp_path / "study", models["llama"]), tmp_path / "out"
    with pytest.raises(SpecError, match=r"^--only 'gne': no such stage \(stages: cmp, gen, "):
        run(spec, out, only=["gne"])
    assert not out.exists()


def plan_rows(console: Console) -> dict[str, str]:
    """The rows of the plan table a dry run printed: stage name -> its row."""
    rows = [line for line in printed(console).splitlines() if "│" in line]
    return {row.split("│")[2].strip(): row for row in rows}


def test_dry_run_prints_the_plan_and_writes_nothing(
    models: dict[str, Path], tmp_path: Path
) -> None:
    spec, out = study(tmp_path / "study", models["llama"]), tmp_path / "out"
    console = quiet()
    plan = run_experiment(spec, out, dry_run=True, console=console)
    assert not out.exists()
    assert plan.report is None
    assert set(plan.statuses.values()) == {"pending"}
    rows = plan_rows(console)
    assert list(rows) == ["mood", "happy", "gen", "cmp"]  # in run order
    assert all("will run" in row for row in rows.values())
    for node in plan.plan.stages:
        assert node.key[:12] in printed(console)

    run(spec, out)
    stages = mood_stages()
    stages["gen"]["max_new_tokens"] = 6
    study(tmp_path / "study", models["llama"], stages)
    everything = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    console = quiet()
    dry = run_experiment(spec, out, dry_run=True, console=console)
    assert dry.statuses == {"mood": "cached", "happy": "cached", "gen": "pending", "cmp": "cached"}
    rows = plan_rows(console)
    assert "will run" in rows["gen"]
    assert all("cached" in rows[name] for name in ("mood", "happy", "cmp"))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == everything

    console = quiet()
    only = run_experiment(spec, tmp_path / "new", only=["gen"], dry_run=True, console=console)
    assert only.statuses == {"mood": "pending", "happy": "skipped", "gen": "pending",
                             "cmp": "skipped"}  # fmt: skip
    assert "not selected" in plan_rows(console)["cmp"]
    assert not (tmp_path / "new").exists()


# -- a failing stage ----------------------------------------------------------------------------


def test_a_failing_stage_keeps_what_finished_and_a_rerun_continues(
    models: dict[str, Path], tmp_path: Path
) -> None:
    folder, out = tmp_path / "study", tmp_path / "out"
    stages = mood_stages()
    stages["mood"]["pairs"] = "later.jsonl"  # not there yet
    stages = {"happy": stages.pop("happy"), **stages}
    spec = study(folder, models["gpt2"], stages)
    with pytest.raises(StageFailed) as caught:
        run(spec, out)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("stage 'mood' (extract): ")
    assert "later.jsonl" in message
    record = run_record(out)
    entries = {entry["name"]: entry for entry in record["stages"]}
    assert entries["happy"]["status"] == "ran"
    assert entries["mood"]["status"] == "failed"
    assert entries["mood"]["error"] == message
    assert entries["gen"]["status"] == "pending"
    assert record["finished"] is None
    happy = next(out.glob("stages/happy-*"))
    assert (happy / "stage.json").is_file()
    assert not list(out.glob("stages/mood-*/stage.json"))
    assert (out / "report.html").is_file()

    write_pairs(folder / "later.jsonl")
    again = run(spec, out)
    assert again.statuses == {"happy": "cached", "mood": "ran", "gen": "ran", "cmp": "ran"}
    assert run_record(out)["finished"] is not None


def test_an_interrupted_stage_is_recorded_and_a_rerun_continues(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or a crash) inside a stage: run.json says which stage, the report is still
    written, the stages before it are kept, and the rerun runs only what is left."""
    import steerlab.runner.summaries as summaries

    spec, out = study(tmp_path / "study", models["llama"]), tmp_path / "out"
    real = summaries.summarize

    def interrupted(kind: str, folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
        if kind == "generate":
            raise KeyboardInterrupt
        return real(kind, folder, settings)

    monkeypatch.setattr(summaries, "summarize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(spec, out)
    record = run_record(out)
    assert [(e["name"], e["status"]) for e in record["stages"]] == [
        ("mood", "ran"), ("happy", "ran"), ("gen", "interrupted"), ("cmp", "pending"),
    ]  # fmt: skip
    assert record["stages"][2]["error"] == "KeyboardInterrupt"
    assert record["finished"] is None
    assert (out / "report.html").is_file()
    assert not list(out.glob("stages/gen-*/stage.json"))

    monkeypatch.setattr(summaries, "summarize", real)
    again = run(spec, out)
    assert again.statuses == {"mood": "cached", "happy": "cached", "gen": "ran", "cmp": "ran"}


# -- paths ----------------------------------------------------------------------------------------


def test_paths_in_settings_are_relative_to_the_spec_not_the_working_directory(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "data").mkdir()
    write_pairs(folder / "data" / "pairs.jsonl")
    (folder / "tiny").symlink_to(models["qwen2"], target_is_directory=True)
    spec = write_spec(folder / "spec.yaml", mood_stages(pairs="data/pairs.jsonl"), {"base": "tiny"})
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "data" / "pairs.jsonl").write_text("not json\n", encoding="utf-8")  # a decoy
    monkeypatch.chdir(elsewhere)
    result = run_experiment(Path("../study/spec.yaml"), "out", console=quiet())
    assert set(result.statuses.values()) == {"ran"}
    assert Path.cwd() == elsewhere  # put back
    assert result.output == elsewhere / "out"
    assert (elsewhere / "out" / "run.json").is_file()
    assert result.plan.base_dir == folder.resolve()
    # The same spec run from its own folder: the same stages (keys).
    monkeypatch.chdir(folder)
    same = run_experiment(spec, tmp_path / "out2", console=quiet())
    assert keys(same) == keys(result)


# -- records --------------------------------------------------------------------------------------


def test_run_and_stage_records(models: dict[str, Path], tmp_path: Path) -> None:
    spec, out = study(tmp_path / "study", models["llama"]), tmp_path / "out"
    result = run(spec, out)
    record = run_record(out)
    assert record["format"] == "steerlab-run/1"
    assert record["name"] == "spec"  # the file's name: the spec has none
    assert record["spec_text"] == spec.read_text(encoding="utf-8")
    assert len(record["spec_sha256"]) == 64
    assert record["resolved"]["stages"]["gen"]["max_new_tokens"] == 4
    assert record["seed"] == 0
    assert {"library_version", "python", "torch", "machine", "created"} <= set(record["provenance"])
    assert record["started"] and record["finished"]
    for entry, node in zip(record["stages"], result.plan.stages, strict=True):
        assert entry["name"] == node.name
        assert entry["key"] == node.key
        assert entry["folder"] == node.folder
        assert entry["depends_on"] == list(node.depends_on)
        assert entry["status"] == "ran"
        assert entry["wall_s"] >= 0
        assert entry["error"] is None
        stage = json.loads((out / node.folder / "stage.json").read_text(encoding="utf-8"))
        assert stage["format"] == "steerlab-stage/1"
        assert (stage["name"], stage["kind"], stage["key"]) == (node.name, node.kind.kind, node.key)
        assert stage["settings"] == json.loads(json.dumps(node.settings))
        assert {name: i["key"] for name, i in stage["inputs"].items()} == {
            name: result.plan.stage(name).key for name in node.depends_on
        }
        assert stage["wall_s"] >= 0 and stage["finished"]
        assert isinstance(stage["summary"], dict)
    # The cached rerun keeps each stage's wall time.
    run(spec, out)
    walls = [entry["wall_s"] for entry in run_record(out)["stages"]]
    assert walls == [entry["wall_s"] for entry in record["stages"]]


def test_the_output_folder_may_be_given_relative(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = study(tmp_path / "study", models["llama"])
    monkeypatch.chdir(tmp_path)
    result = run(Path(os.path.relpath(spec, tmp_path)), Path("runs") / "a", only=["mood"])
    assert result.output == tmp_path / "runs" / "a"
    assert result.statuses["mood"] == "ran"


# -- kill -9 ------------------------------------------------------------------------------------

KILL_STAGES: dict[str, dict[str, Any]] = {
    **{name: stage for name, stage in mood_stages().items() if name in ("mood", "gen")},
    "sw": {  # the long stage: nine coefficients, one unit of work each
        "kind": "sweep",
        "model": "base",
        "vector": "mood",
        "behavior": ["mood=pairs:builtin:happy_sad"],
        "limit": 16,
        "coefficients": "-2:2:9",
        "coefficients_per_batch": 1,
        "batch_size": 8,
    },
    "cmp": {"kind": "compare", "vectors": ["mood", "mood"]},
}


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in keys}


def assert_same_stages(resumed: Path, fresh: Path) -> None:
    """The same stage folders, every output byte-identical; only times and provenance (a commit
    may land between runs) may differ in the JSON records and a vector file's header."""
    from safetensors.torch import load_file

    from kill_resume import folder_bytes

    assert stage_folders(resumed) == stage_folders(fresh)
    for name in stage_folders(fresh):
        got, want = resumed / "stages" / name, fresh / "stages" / name
        assert sorted(folder_bytes(got)) == sorted(folder_bytes(want)), name
        for file, content in folder_bytes(want).items():
            if file == "stage.json":
                a, b = (json.loads((f / file).read_text("utf-8")) for f in (got, want))
                assert without(a, "finished", "wall_s") == without(b, "finished", "wall_s")
            elif file.endswith(".safetensors"):
                assert vector_metadata(got / file) == vector_metadata(want / file), name
            elif file.endswith(".json") and b'"provenance"' in content:
                a, b = (json.loads((f / file).read_text("utf-8")) for f in (got, want))
                assert without(a, "provenance") == without(b, "provenance"), f"{name}/{file}"
            else:
                assert folder_bytes(got)[file] == content, f"{name}/{file} differs"
            # Spelled out for the outputs that matter (a byte diff is hard to read).
            if file.endswith(".safetensors"):
                tensors, expected = load_file(got / file), load_file(want / file)
                assert tensors.keys() == expected.keys()
                assert all(tensors[k].equal(expected[k]) for k in expected)
            if file.endswith(".jsonl"):
                rows = [json.loads(line) for line in (got / file).read_text("utf-8").splitlines()]
                assert rows == [
                    json.loads(line) for line in (want / file).read_text("utf-8").splitlines()
                ]
    statuses = [entry["status"] for entry in run_record(resumed)["stages"]]
    assert set(statuses) <= {"ran", "cached"}
    assert run_record(resumed)["finished"] is not None


def vector_metadata(path: Path) -> dict[str, Any]:
    """A vector file's steerlab metadata, less its creation time."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    record = json.loads(metadata.pop("steerlab", "{}"))
    return {**metadata, "steerlab": without(record, "created")}


def sweep_rows(out: Path) -> int:
    from kill_resume import line_count

    return sum(line_count(path) for path in out.glob("stages/sw-*/out/results.jsonl"))


def test_kill_9_mid_stage_then_rerun_gives_the_same_files(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """SIGKILL while the sweep has written part of its results; the rerun keeps the stages
    before it, continues the sweep, and ends with an uninterrupted run's files."""
    from kill_resume import Cli

    spec = study(tmp_path / "study", models["llama"], KILL_STAGES)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    cli = Cli(tmp_path)
    uninterrupted = cli.start(["run", str(spec), "-o", str(fresh)])
    cli.kill_when(["run", str(spec), "-o", str(killed)], lambda: sweep_rows(killed) >= 1)
    assert 1 <= sweep_rows(killed) < 9, "the kill came after the sweep"
    assert not list(killed.glob("stages/sw-*/stage.json"))
    assert len(list(killed.glob("stages/*/stage.json"))) == 2  # mood, gen
    at_kill = {e["name"]: e["status"] for e in run_record(killed)["stages"]}
    assert at_kill == {"mood": "ran", "gen": "ran", "sw": "running", "cmp": "pending"}
    cli.run(["run", str(spec), "-o", str(killed)])
    cli.finish(uninterrupted)
    statuses = {e["name"]: e["status"] for e in run_record(killed)["stages"]}
    assert statuses == {"mood": "cached", "gen": "cached", "sw": "ran", "cmp": "ran"}
    assert_same_stages(killed, fresh)


@pytest.mark.slow  # four more steerlab processes
def test_kill_9_at_several_moments_then_rerun_gives_the_same_files(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """SIGKILL as soon as the first stage is recorded, again between two stages, again inside
    the sweep, and once more as soon as the sweep is recorded; then a rerun to the end."""
    from kill_resume import Cli

    spec = study(tmp_path / "study", models["llama"], KILL_STAGES)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    cli = Cli(tmp_path)
    uninterrupted = cli.start(["run", str(spec), "-o", str(fresh)])
    args = ["run", str(spec), "-o", str(killed)]

    def recorded() -> int:
        return len(list(killed.glob("stages/*/stage.json")))

    cli.kill_when(args, lambda: recorded() >= 1)
    cli.kill_when(args, lambda: (killed / "run.json").is_file() and recorded() >= 2)
    cli.kill_when(args, lambda: sweep_rows(killed) >= 3)
    cli.kill_when(args, lambda: bool(list(killed.glob("stages/sw-*/stage.json"))))
    cli.run(args)
    cli.finish(uninterrupted)
    assert_same_stages(killed, fresh)
