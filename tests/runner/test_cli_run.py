"""``steerlab run`` and ``steerlab schema`` through the CLI (typer's runner, in-process): a bad
spec is exit 1 with ONE line on stderr and nothing written; a run prints its progress and the
report's path; a failing stage is one line naming it; the schema is JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bad_specs import GRAPH_ERRORS, SCHEMA_ERRORS, expected_error
from specs import (
    mood_stages,
    save_model,
    stage_folders,
    write_pairs,
    write_spec,
)
from typer.testing import CliRunner, Result

from steerlab.cli import app
from steerlab.runner import json_schema

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^Loading weights: +\d+%\|")


def invoke(*args: str | Path) -> Result:
    """``steerlab ARGS`` in-process."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def error_line(result: Result) -> str:
    """The one ``error:`` line of a refused command (exit 1, no traceback), without ``error: ``."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    # As tests/cli reads stderr: without colour codes and transformers' loading bars.
    lines = [ANSI.sub("", line) for line in result.stderr.splitlines()]
    lines = [line for line in lines if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("cli-run-model") / "llama")


# -- bad specs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "message", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in (*SCHEMA_ERRORS, *GRAPH_ERRORS)],
)
def test_a_bad_spec_is_one_line_and_writes_nothing(
    tmp_path: Path, line: int, key: str | None, message: str, text: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    error = error_line(invoke("run", spec, "-o", out))
    assert error.startswith(expected_error(spec, line, key, message)), error
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_a_bad_spec_leaves_an_existing_run_folder_alone(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("stages:\n  a:\n    kind: extract\n", encoding="utf-8")
    out = tmp_path / "out"
    (out / "stages").mkdir(parents=True)
    (out / "run.json").write_text("{}\n", encoding="utf-8")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    error_line(invoke("run", spec, "-o", out))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_a_missing_spec_file(tmp_path: Path) -> None:
    error = error_line(invoke("run", tmp_path / "nope.yaml", "-o", tmp_path / "out"))
    assert error == f"{tmp_path / 'nope.yaml'}: no such spec file"
    assert not (tmp_path / "out").exists()


def test_output_is_required(tmp_path: Path) -> None:
    result = invoke("run", tmp_path / "spec.yaml")
    assert result.exit_code == 2  # typer's usage error
    assert "--output" in result.output


# -- running ----------------------------------------------------------------------------------


def study(folder: Path, model: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_pairs(folder / "pairs.jsonl")
    return write_spec(folder / "spec.yaml", mood_stages(), {"base": str(model)})


def test_run_dry_run_and_only(model: Path, tmp_path: Path) -> None:
    spec, out = study(tmp_path / "study", model), tmp_path / "out"

    result = invoke("run", spec, "-o", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("will run") == 4
    assert not out.exists()

    result = invoke("run", spec, "-o", out, "--only", "gen")
    assert result.exit_code == 0, result.output
    assert "2 to run, 0 cached" in result.stdout  # overall progress...
    assert "1/2 mood (extract)" in result.stdout  # ...and per stage
    assert "2/2 gen (generate)" in result.stdout
    assert f"report: {out / 'report.html'}" in result.stdout
    assert [name.split("-")[0] for name in stage_folders(out)] == ["gen", "mood"]

    error = error_line(invoke("run", spec, "-o", out, "--only", "nope"))
    assert error.startswith("--only 'nope': no such stage (stages: cmp, gen, happy, mood)")

    result = invoke("run", spec, "-o", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("will run") == 2  # happy, cmp
    assert result.stdout.count("cached") == 2  # mood, gen

    result = invoke("run", spec, "-o", out, "--only", "cmp", "--only", "happy")
    assert result.exit_code == 0, result.output
    assert len(stage_folders(out)) == 4
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [entry["status"] for entry in record["stages"]] == ["cached", "ran", "cached", "ran"]


def test_a_failing_stage_is_one_line_naming_it(model: Path, tmp_path: Path) -> None:
    folder, out = tmp_path / "study", tmp_path / "out"
    spec = study(folder, model)
    (folder / "pairs.jsonl").unlink()
    error = error_line(invoke("run", spec, "-o", out))
    assert error.startswith("stage 'mood' (extract): "), error
    assert "pairs.jsonl" in error
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["stages"][0]["status"] == "failed"
    assert (out / "report.html").is_file()
    write_pairs(folder / "pairs.jsonl")
    result = invoke("run", spec, "-o", out)
    assert result.exit_code == 0, result.output


# -- schema -----------------------------------------------------------------------------------


def test_schema_prints_the_json_schema() -> None:
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema == json.loads(json.dumps(json_schema()))
    assert "stages" in schema["properties"]
    assert {"ExtractStage", "SweepStage", "FinetuneStage"} <= set(schema["$defs"])


def test_schema_writes_a_file(tmp_path: Path) -> None:
    target = tmp_path / "steerlab-spec.schema.json"
    result = invoke("schema", "-o", target)
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(invoke("schema").stdout)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left


def test_schema_creates_the_folder_like_every_output(tmp_path: Path) -> None:
    result = invoke("schema", "-o", tmp_path / "new" / "schema.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "new" / "schema.json").read_text(encoding="utf-8"))


def test_schema_onto_a_folder_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    error = error_line(invoke("schema", "-o", target))
    assert error == f"--output {target}: is a folder; give a file name"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    assert not any(target.iterdir())


def test_an_output_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("stages:\n  v: {kind: extract, pairs: builtin:happy_sad}\n")
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    for extra in ([], ["--dry-run"]):
        result = CliRunner().invoke(app, ["run", str(spec), "-o", str(blocker), *extra])
        assert result.exit_code == 1
        assert "exists and is not a folder" in result.stderr
    assert blocker.read_text() == "not a folder"
