"""Tables stay whole when the output is not a terminal (a log file, a CI log)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.table import Table
from typer.testing import CliRunner

from conftest import save_tiny_llama
from steerlab.cli import app
from steerlab.terminal import LOG_WIDTH, LogConsole

LONG = "a_rather_long_dataset_name_for_a_log_file"


@pytest.fixture(autouse=True)
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)


def test_log_console_is_wide_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LogConsole(file=io.StringIO()).width == LOG_WIDTH
    assert LogConsole(file=io.StringIO(), width=60).width == 60
    console = LogConsole(file=io.StringIO())
    console.size = (70, 20)
    assert console.width == 70
    monkeypatch.setenv("COLUMNS", "90")
    assert LogConsole(file=io.StringIO()).width == 90


def _table() -> Table:
    table = Table()
    for name in ("metric", "data", "model_with_a_long_label"):
        table.add_column(name)
    table.add_row("ab_honest_rate", LONG, "0.50")
    return table


def test_tables_never_truncate_names() -> None:
    buffer = io.StringIO()
    LogConsole(file=buffer).print(_table())
    text = buffer.getvalue()
    assert "ab_honest_rate" in text and LONG in text and "…" not in text
    narrow = io.StringIO()
    LogConsole(file=narrow, width=40).print(_table())
    assert "…" not in narrow.getvalue()
    single = Table()
    single.add_column("data")
    single.add_row(LONG)
    folded = io.StringIO()
    LogConsole(file=folded, width=20).print(single)
    letters = "".join(c for c in folded.getvalue() if c.isalnum() or c == "_")
    assert LONG in letters  # folded onto more lines, every character kept


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("terminal")
    save_tiny_llama(root, "tiny", f"{LONG}_vector.safetensors")
    facts = root / f"{LONG}.csv"
    rows = [f"Statement number {i} holds.,{i % 2}" for i in range(12)]
    facts.write_text("statement,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (root / "nodata").mkdir()
    return {"root": root, "model": root / "tiny", "vector": vector_path(root), "facts": facts}


def vector_path(root: Path) -> Path:
    return root / f"{LONG}_vector.safetensors"


def test_cli_tables_keep_full_names_when_captured(setup: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    model = str(setup["model"])
    label = "representation_tuned_model_label"
    evaluation = runner.invoke(
        app,
        [
            "eval",
            "--models",
            f"{label}={model}",
            "--facts",
            str(setup["facts"]),
            "--data-dir",
            str(setup["root"] / "nodata"),
            "--limit",
            "4",
            "--bootstrap",
            "10",
            "-o",
            str(tmp_path / "eval"),
        ],
    )
    assert evaluation.exit_code == 0, evaluation.output
    for name in ("ab_honest_rate", "ab_honest_prob", LONG, "honesty_ab", "general_text", label):
        assert name in evaluation.stdout, name
    sweep = runner.invoke(
        app,
        [
            "sweep",
            "--model",
            model,
            "--vector",
            str(setup["vector"]),
            "--behavior",
            f"{LONG}=pairs:builtin:happy_sad",
            "--helpfulness",
            "mmlu:builtin:general_mc",
            "--limit",
            "2",
            "--coefficients=-1,0,1",
            "--no-estimates",
            "-o",
            str(tmp_path / "sweep"),
        ],
    )
    assert sweep.exit_code == 0, sweep.output
    assert LONG in sweep.stdout and "B_likelihood" in sweep.stdout
    other = tmp_path / f"{LONG}_second.safetensors"
    other.write_bytes(setup["vector"].read_bytes())
    compare = runner.invoke(app, ["compare", str(setup["vector"]), str(other)])
    assert compare.exit_code == 0, compare.output
    assert f"{LONG}_vector" in compare.stdout and f"{LONG}_second" in compare.stdout
    for result in (evaluation, sweep, compare):
        assert "…" not in result.stdout
