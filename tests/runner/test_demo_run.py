"""The demo spec end to end on the embedded model: ``steerlab demo`` runs all three lines in
miniature, its report renders in Chromium, a rerun runs nothing, the three miniature specs are
the demo's own stages, and a changed setting reruns that stage and its dependants only.

One run of the demo (several minutes on 2 CPU cores) serves every test of the module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from browser import artifacts_dir, check_in_browser, require_browser
from steerlab.cli.app import app
from steerlab.runner import plan_experiment, run_experiment
from steerlab.runner.run import spec_file
from steerlab.terminal import LogConsole

pytestmark = pytest.mark.slow

EXAMPLES = spec_file("builtin:demo").parent
MINIATURES = ("steering-vectors-mini", "representation-tuning-mini", "tradeoff-mini")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    result = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.stdout


def quiet() -> LogConsole:
    """A console that keeps what it prints (for the plan tables)."""
    return LogConsole(record=True, width=200)


def test_every_stage_ran_and_printed_its_results(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    run = json.loads((out / "run.json").read_text())
    names = [stage["name"] for stage in run["stages"]]
    assert names == list(plan_experiment("builtin:demo").spec.stages)
    assert {stage["status"] for stage in run["stages"]} == {"ran"}
    assert run["finished"] and run["provenance"]["library_version"]
    for stage in run["stages"]:
        record = json.loads((out / stage["folder"] / "stage.json").read_text())
        assert record["key"] == stage["key"] and record["summary"], stage["name"]
    # The commands' own terminal output: generations, the sweep's fits, cosines, the suite.
    for text in ("behaviour fit", "cosine", "tuned toward", "steered online", "report:"):
        assert text in stdout, text


def test_the_generations_differ_by_coefficient(demo: tuple[Path, str]) -> None:
    out, _ = demo
    folder = next(out.glob("stages/mood_generations-*"))
    rows = [json.loads(line) for line in (folder / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 9
    for prompt in {row["prompt"] for row in rows}:
        texts = [row["text"] for row in rows if row["prompt"] == prompt]
        assert len(set(texts)) == 3, texts


def test_the_report_renders_in_chromium(demo: tuple[Path, str]) -> None:
    out, _ = demo
    report = out / "report.html"
    html = report.read_text()
    assert len(html.encode()) < 5_000_000  # small enough to e-mail
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    for name in plan_experiment("builtin:demo").spec.stages:
        assert name in html, name
    require_browser()
    found: dict[str, Any] = check_in_browser(report, artifacts_dir() / "demo-report.png")
    assert len(found["plots"]) >= 6  # sweep (3), compare, matrix, suite bars
    for plot in found["plots"]:
        assert plot["visible"] and plot["inked"], plot
    assert found["broken_references"] == []


def test_a_rerun_runs_nothing(demo: tuple[Path, str]) -> None:
    out, _ = demo
    before = {p: p.stat().st_mtime_ns for p in out.glob("stages/*/stage.json")}
    result = run_experiment("builtin:demo", out, console=quiet())
    assert set(result.statuses.values()) == {"cached"}
    assert {p: p.stat().st_mtime_ns for p in out.glob("stages/*/stage.json")} == before


@pytest.mark.parametrize("name", MINIATURES)
def test_each_miniature_is_made_of_the_demos_stages(demo: tuple[Path, str], name: str) -> None:
    """Same settings, same keys: the demo run already holds every stage of each miniature."""
    out, _ = demo
    result = run_experiment(EXAMPLES / f"{name}.yaml", out, dry_run=True, console=quiet())
    assert result.statuses and set(result.statuses.values()) == {"cached"}


def test_a_changed_setting_reruns_that_stage_and_its_dependants(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = demo
    text = (EXAMPLES / "demo.yaml").read_text()
    changed = tmp_path / "demo.yaml"
    away = "    rep_weight: 4.0\n    direction: away"
    assert text.count(away) == 1
    changed.write_text(text.replace(away, away.replace("4.0", "2.0")))
    result = run_experiment(changed, out, dry_run=True, console=quiet())
    will_run = {name for name, status in result.statuses.items() if status == "pending"}
    assert will_run == {"tuned_away", "honesty_suite"}
    changed.write_text(text.replace("builtin:happy_sad[:48]", "builtin:happy_sad[:40]"))
    result = run_experiment(changed, out, dry_run=True, console=quiet())
    will_run = {name for name, status in result.statuses.items() if status == "pending"}
    assert will_run == {"mood", "mood_generations", "mood_tradeoff"}
